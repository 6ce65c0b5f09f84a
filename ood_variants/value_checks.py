"""The properties a value perturbation must keep, checked on a (base task, variant) pair.

Each check reads the variant's value map (``Task.value_map``, original → variant) and the two
scenarios, and returns what is wrong (empty: nothing). The predicates copy what the backends do
(``envs/``, bug-compatible with bfcl-eval), written independently of the generator in
:mod:`ood_variants.values`; docs/ood.md ("what each transform preserves") says where each one
matters. :func:`property_problems` runs them all; :data:`PROPERTY_CHECKS` names them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping

from ood_variants.values import (
    _message_defaults,
    _twitter_users,
    directory_listings,
    interpreted_file_names,
    matches,
    search_entries,
    search_queries,
)
from toolenv.data import Task
from toolenv.executor import keyword_call

Values = Mapping[str, str]
Check = Callable[[Task, Task, Values], list[str]]

#: characters mkdir/touch/echo/cat refuse in a name (envs/file_system.py, as the reference)
FORBIDDEN = set('|/\\?%*:"><')


def _pairs(values: Values, test: Callable[[str, str], bool], what: str) -> list[str]:
    return [f"{old!r} -> {new!r}: {what}" for old, new in values.items() if not test(old, new)]


def hidden_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """``ls()`` hides names starting with ``.``: the leading dots stay, and every folder
    shows (and hides) the same entries."""
    problems = _pairs(values, lambda a, b: len(a) - len(a.lstrip(".")) == len(b) - len(b.lstrip(".")), "leading dot")
    for before, after in zip(_listings(base), _listings(variant)):
        shown = [values.get(n, n) for n in before if not n.startswith(".")]
        if shown != [n for n in after if not n.startswith(".")]:
            problems.append(f"visible entries {shown} became {[n for n in after if not n.startswith('.')]}")
    return problems


def _suffix(name: str) -> str:
    return name.lstrip(".").partition(".")[2]


def extension_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Every suffix (``.txt``, ``.tar.gz``) stays: users and searches (``find(name='.txt')``)
    refer to it."""
    return _pairs(
        values, lambda a, b: _suffix(a) == _suffix(b) and os.path.splitext(a)[1] == os.path.splitext(b)[1], "suffix"
    )


def separators_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """``/`` splits paths (``cd``, ``find``, ``mv``/``cp`` refuse it), ``.`` and ``..`` are
    special: no replacement is or contains them, and every ground-truth path keeps its parts."""
    problems = _pairs(values, lambda a, b: "/" not in b and b not in (".", "..") and b.count(".") == a.count("."), "/")
    for (_, old_kwargs), (_, new_kwargs) in zip(_calls(base), _calls(variant)):
        for old, new in zip(_strings(old_kwargs), _strings(new_kwargs)):
            if old.count("/") != new.count("/") or [p in (".", "..") for p in old.split("/")] != [
                p in (".", "..") for p in new.split("/")
            ]:
                problems.append(f"path {old!r} became {new!r}")
    return problems


def characters_allowed(base: Task, variant: Task, values: Values) -> list[str]:
    """No character the file system refuses, and none new at all: only letters replace
    letters (ASCII, so results and call strings need no escaping; no ``(``, which the official
    engine would take for a call)."""

    def ok(old: str, new: str) -> bool:
        added = {c for c in new if not c.isalnum()} - set(old)
        return new.isascii() and not added and not (FORBIDDEN & set(new)) and json.dumps(new) == f'"{new}"'

    return _pairs(values, ok, "characters")


def _case_shape(name: str) -> str:
    return re.sub(r"[A-Z][a-z]+|[A-Z]{2,}(?![a-z])|[a-z]{2,}", lambda m: _case_class(m.group(0)), name)


def _case_class(word: str) -> str:
    return "\0U" if word.isupper() else "\0C" if word[0].isupper() else "\0l"


def case_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Lookups are case-sensitive and searches lowercase: every word keeps its case
    (``Documents`` → ``Fjord``, ``carEnthusiast`` → ``lagoonGlacier``, ``README`` → ``AMBER``)."""
    return _pairs(values, lambda a, b: _case_shape(a) == _case_shape(b), "case")


def _numeric(name: str) -> bool:
    return not re.search(r"[A-Za-z]", name)


def digits_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Numbers are never replaced and never made: a numeric-looking value (``2024``) stays,
    a replacement has a word, and its digit runs (``History101``, ``Q4``) are the old ones."""
    return _pairs(
        values,
        lambda a, b: not _numeric(a) and not _numeric(b) and re.findall(r"\d+", a) == re.findall(r"\d+", b),
        "digits",
    )


def unique(base: Task, variant: Task, values: Values) -> list[str]:
    """Entries stay distinct in every folder, user list and user map: replacements differ
    from each other and, case-insensitively, from everything in the task."""
    news = [new.lower() for new in values.values()]
    problems = [] if len(set(news)) == len(news) else [f"replacements collide: {sorted(values.values())}"]
    text = _task_text(base).lower()
    problems += [f"{new!r} already occurs in the task" for new in values.values() if new.lower() in text]
    return problems


def order_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Sorted listings keep their order ("the alphabetically first file"), in every folder (with
    the long-context images), the Twitter users and the user map; and each entry keeps its place."""
    problems = []
    for before, after in zip(_scopes(base), _scopes(variant)):
        mapped = [values.get(n, n) for n in before]
        if mapped != after:
            problems.append(f"entries {mapped} are {after}")
        elif [values.get(n, n) for n in sorted(before)] != sorted(after):
            problems.append(f"sorted order of {sorted(before)} became {sorted(after)}")
    return problems


def searches_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Every ground-truth substring search (``find`` names, ``grep`` lines, ``search_tweets``
    and ``search_messages``, both case-insensitive) matches the same entries of the scenario."""
    before, after = search_entries(_with_defaults(base)), search_entries(_with_defaults(variant))
    problems = []
    old_queries, new_queries = search_queries(_calls(base)), search_queries(_calls(variant))
    for (kind, old), (_, new) in zip(old_queries, new_queries):
        hits = [matches(kind, old, entry) for entry in before[kind]]
        if hits != [matches(kind, new, entry) for entry in after[kind]]:
            problems.append(f"{kind} search {old!r} (now {new!r}) matches other entries")
    return problems


def special_names_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """Long-context mode exempts some file names from its filler and adds image files: none
    is replaced, and no replacement is one."""
    special = interpreted_file_names()
    return _pairs(values, lambda a, b: a not in special and b not in special, "long-context name")


def contents_kept(base: Task, variant: Task, values: Values) -> list[str]:
    """File contents are data (``wc``, ``du``, ``diff``, ``grep`` read them): unchanged."""
    return [] if _contents(base) == _contents(variant) else ["file contents changed"]


PROPERTY_CHECKS: dict[str, Check] = {
    "hidden": hidden_kept,
    "extension": extension_kept,
    "separators": separators_kept,
    "characters": characters_allowed,
    "case": case_kept,
    "digits": digits_kept,
    "unique": unique,
    "order": order_kept,
    "searches": searches_kept,
    "special_names": special_names_kept,
    "contents": contents_kept,
}


def property_problems(base: Task, variant: Task) -> list[str]:
    """Every property of :data:`PROPERTY_CHECKS` that the variant's value map breaks."""
    values = variant.value_map
    if not values:
        return []
    return [
        f"{variant.id} {variant.ood_spec}@{variant.ood_seed}: {name}: {problem}"
        for name, check in PROPERTY_CHECKS.items()
        for problem in check(base, variant, values)
    ]


# -- reading the tasks -------------------------------------------------------------------------


def _listings(task: Task) -> list[list[str]]:
    return directory_listings(task.initial_config, task.long_context)


def _with_defaults(task: Task) -> dict[str, Any]:
    """The scenario, with the messaging backend's default user map and inbox where it uses them."""
    config = task.initial_config
    if "MessageAPI" in task.involved_classes:
        config["MessageAPI"] = {**_message_defaults(task.release), **(config.get("MessageAPI") or {})}
    return config


def _scopes(task: Task) -> list[list[str]]:
    config = _with_defaults(task)
    people = list((config.get("MessageAPI") or {}).get("user_map") or {})
    return _listings(task) + [_twitter_users(config), people]


def _calls(task: Task) -> list[tuple[str, dict[str, Any]]]:
    """The ground-truth calls with canonical names, arguments bound to their parameters."""
    name_map = task.name_map
    calls = []
    for turn in task.ground_truth_calls:
        for call in turn:
            translated = name_map.translate(call) if name_map is not None else call
            call = keyword_call(translated, task.involved_classes, task.release)  # type: ignore[arg-type]
            calls.append((call.name, dict(call.kwargs)))
    return calls


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _task_text(task: Task) -> str:
    turns = [m.content for turn in task.turns for m in turn]
    return json.dumps([_with_defaults(task), turns, list(task.ground_truth)])


def _contents(task: Task) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                found.append(value) if key == "content" and isinstance(value, str) else walk(value)

    walk(task.initial_config.get("GorillaFileSystem") or {})
    return found


__all__ = ["PROPERTY_CHECKS", "property_problems"]
