"""Consistent value perturbation: entity values replaced together in the scenario, the user
turns and the ground truth, so the backends simply run on the perturbed state.

Only values that no backend interprets are replaced:

- file and folder names of the file system (below its root folder; not the names its
  long-context mode treats specially), and
- user names of the Twitter scenario (the logged-in user, tweet authors, followed users), and
- people in the messaging scenario (the names of its user map; when the scenario relies on the
  backend's default map, that map is written into the scenario, renamed).

Dates, airport codes and cities (looked up in the travel tables), stock symbols and company
names (TradingBot's tables), card numbers, IDs and amounts (computed with, or checked against,
backend tables) are left alone: replacing them would change what the backends answer. A name
is also left alone when a ground-truth argument uses part of it (``find(name='report')`` must
still find ``final_report.pdf``), or when it is too short to be a safe whole word.

A replacement keeps what the backends act on (docs/ood.md, "what each transform preserves"):
its shape (:mod:`ood_variants.value_names`: leading dot, suffix, case, digits, characters), the
sorted order of every folder, the user list and the user map, and what every ground-truth search
(``find``, ``grep``, ``search_tweets``, ``search_messages``) matches. A replacement that would
break the order or a search is dropped (the name is kept), until none does.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from envs import backend_class
from envs._official import official_literal
from ood_variants.banks import ENTITY_WORDS, PEOPLE
from ood_variants.draft import Draft, map_strings
from ood_variants.value_names import name_parts, ordered_names

MIN_LENGTH = 3
#: the backend methods (canonical) whose argument is matched as a substring, and how
SEARCHES = {("find", "name"): "names", ("grep", "pattern"): "lines"}
SEARCHES.update({("search_tweets", "keyword"): "tweets", ("search_messages", "keyword"): "messages"})


# -- what the scenario holds -------------------------------------------------------------------


def directory_listings(config: Mapping[str, Any], long_context: bool = False) -> list[list[str]]:
    """The entry names of every folder below the file-system root (a scope for order). In
    long-context mode a folder without sub-folders also lists the image files the backend adds."""
    listings: list[list[str]] = []
    images = list(official_literal("long_context.py", "POPULATE_FILE_EXTENSION")) if long_context else []

    def walk(contents: Mapping[str, Any]) -> None:
        listing = list(contents)
        subdirectories = [n for n in contents.values() if isinstance(n, dict) and n.get("type") == "directory"]
        listings.append(listing + (images if not subdirectories else []))
        for node in subdirectories:
            walk(node.get("contents") or {})

    for root in (config.get("GorillaFileSystem", {}).get("root") or {}).values():
        if isinstance(root, dict):
            walk(root.get("contents") or {})
    return listings


def _file_system_names(config: Mapping[str, Any]) -> list[str]:
    return [name for listing in directory_listings(config) for name in listing]


def _twitter_users(config: Mapping[str, Any]) -> list[str]:
    twitter = config.get("TwitterAPI") or {}
    users = [twitter.get("username")] if isinstance(twitter.get("username"), str) else []
    users += [t.get("username") for t in (twitter.get("tweets") or {}).values() if isinstance(t, dict)]
    users += [u for u in twitter.get("following_list") or [] if isinstance(u, str)]
    return list(dict.fromkeys(u for u in users if isinstance(u, str)))


def _message_people(draft: Draft) -> list[str]:
    """Names in the messaging scenario's user map (the scenario's own, or the backend default)."""
    if "MessageAPI" not in draft.base.involved_classes:
        return []
    scenario = draft.config.get("MessageAPI") or {}
    user_map = scenario["user_map"] if "user_map" in scenario else _message_defaults(draft.base.release)["user_map"]
    return [name for name in user_map if isinstance(name, str)]


def _message_defaults(version: str) -> dict[str, Any]:
    """The messaging backend's default user map and inbox (the inbox names a user), a fresh copy."""
    return json.loads(_message_defaults_text(version))


@lru_cache(maxsize=None)
def _message_defaults_text(version: str) -> str:
    probe = backend_class("MessageAPI", version)()
    probe.load_scenario({})
    return json.dumps({"user_map": probe.user_map, "inbox": probe.inbox})  # type: ignore[attr-defined]


def _truth_strings(draft: Draft) -> list[str]:
    found: list[str] = []
    map_strings([list(call.kwargs.values()) for turn in draft.truth for call in turn], lambda s: found.append(s) or s)
    return found


def search_queries(calls: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """``(what is searched, query)`` of every substring search among canonical calls."""
    return [
        (SEARCHES[(name, param)], value)
        for name, kwargs in calls
        for param, value in kwargs.items()
        if (name, param) in SEARCHES and isinstance(value, str)
    ]


def _canonical_calls(draft: Draft) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for turn in draft.truth:
        for call in turn:
            canonical, params = draft.names.get(call.name, (call.name, {}))
            calls.append((canonical, {params.get(k, k): v for k, v in call.kwargs.items()}))
    return calls


@lru_cache(maxsize=1)
def interpreted_file_names() -> frozenset[str]:
    """File names the file-system backend treats specially in long-context mode: exempt from
    the filler, or added by it. Renaming to or from them would change what the backend loads."""
    tail = official_literal("long_context.py", "FILES_TAIL_USED")
    return frozenset(tail) | frozenset(official_literal("long_context.py", "POPULATE_FILE_EXTENSION"))


def _file_contents(config: Mapping[str, Any]) -> str:
    """All file contents of the file-system scenario, joined (they are data, never rewritten)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "content" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)

    walk(config.get("GorillaFileSystem") or {})
    return "\n".join(found)


# -- what may be replaced, and with what ---------------------------------------------------------


def _safe(name: str, truth_strings: Iterable[str]) -> bool:
    if name in interpreted_file_names() or len(name) < MIN_LENGTH or not re.fullmatch(r"[\w.\- ]+", name):
        return False
    if name_parts(name) is None:  # numeric-looking, no word, or an odd suffix
        return False
    return not any(s != name and s and s in name for s in truth_strings)


def _bounds(olds: Iterable[str], scopes: Iterable[list[str]]) -> dict[str, tuple[str | None, str | None]]:
    """For each old name, the nearest kept names below and above it in any scope it is in."""
    renamed = set(olds)
    bounds: dict[str, tuple[str | None, str | None]] = {}
    for scope in scopes:
        kept = [n for n in scope if n not in renamed]
        for name in scope:
            if name in renamed:
                low, high = bounds.get(name, (None, None))
                below = max((k for k in kept if k < name), default=None)
                above = min((k for k in kept if k > name), default=None)
                low = below if low is None or (below is not None and below > low) else low
                high = above if high is None or (above is not None and above < high) else high
                bounds[name] = (low, high)
    return bounds


def _bank(words: Iterable[str], text: str) -> list[str]:
    """The bank words found nowhere in the task (case-insensitively): a name containing one is
    new, and differs from every kept name even to a case-insensitive search."""
    return [w for w in words if w.lower() not in text]


def _assign(kinds: list[tuple[list[str], list[str], list[list[str]]]], rng: random.Random) -> dict[str, str]:
    """One mapping for all kinds ``(old names, bank, scopes)``; no bank word leads two names."""
    used: set[str] = set()
    mapping: dict[str, str] = {}
    for olds, bank, scopes in kinds:
        mapping.update(ordered_names(olds, bank, rng, _bounds(olds, scopes), used))
    return mapping


# -- what a replacement must not change ----------------------------------------------------------


def replacer(mapping: Mapping[str, str]) -> Callable[[str], str]:
    """Replace whole names (a name is delimited like a file name: not part of a longer word,
    file name or ``name.ext``)."""
    if not mapping:
        return lambda value: value
    ordered = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w\-]|\.\w)")
    return lambda value: pattern.sub(lambda m: mapping[m.group(1)], value)


def _order_breaks(mapping: Mapping[str, str], scopes: Iterable[list[str]]) -> set[str]:
    broken: set[str] = set()
    for scope in scopes:
        before = sorted(scope)
        after = sorted(mapping.get(n, n) for n in scope)
        broken |= {a for a, b in zip(before, after) if mapping.get(a, a) != b and a in mapping}
    return broken


def search_entries(config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """What each kind of search looks at: entry names, file lines, tweets (content and tags),
    inbox messages (the first item's text, as the backend reads it)."""
    twitter = config.get("TwitterAPI") or {}
    tweets = [t for t in (twitter.get("tweets") or {}).values() if isinstance(t, dict)]
    inbox = (config.get("MessageAPI") or {}).get("inbox") or []
    return {
        "names": _file_system_names(config),
        "lines": _file_contents(config).splitlines(),
        "tweets": [(t.get("content"), t.get("tags")) for t in tweets],
        "messages": [next(iter(m.values()), None) for m in inbox if isinstance(m, dict)],
    }


def matches(kind: str, query: str, entry: Any) -> bool:
    """Whether the backend's search matches ``entry``: ``find`` and ``grep`` by substring,
    ``search_tweets`` by lowercased substring of the content or equal lowercased tag,
    ``search_messages`` by lowercased substring (a non-text entry matches nothing)."""
    if kind == "tweets":
        content, tags = entry
        return (isinstance(content, str) and query.lower() in content.lower()) or query.lower() in [
            tag.lower() for tag in tags or () if isinstance(tag, str)
        ]
    if kind == "messages":
        return isinstance(entry, str) and query.lower() in entry.lower()
    return query in entry


def _search_breaks(mapping: Mapping[str, str], draft: Draft, queries: list[tuple[str, str]]) -> set[str]:
    if not queries:
        return set()
    replace = replacer(mapping)
    before = search_entries(draft.config)
    after = search_entries(_renamed_config(draft.config, replace))
    broken: set[str] = set()
    for kind, query in queries:
        new_query = replace(query)
        for old, new in zip(before[kind], after[kind]):
            if matches(kind, query, old) != matches(kind, new_query, new):
                text = json.dumps(old).lower()
                broken |= {name for name in mapping if name.lower() in text or name in query}
    return broken


# -- the transform -----------------------------------------------------------------------------


def _rename_file_system(node: Any, replace: Callable[[str], str]) -> Any:
    """The file-system scenario with entry names replaced; file contents are data and stay as
    they are (``wc``, ``du`` and ``diff`` results then stay what they were)."""
    if isinstance(node, dict):
        return {
            replace(k) if isinstance(k, str) else k: (
                v if k == "content" and isinstance(v, str) else _rename_file_system(v, replace)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rename_file_system(v, replace) for v in node]
    return node


def _renamed_config(config: Mapping[str, Any], replace: Callable[[str], str]) -> dict[str, Any]:
    return {
        cls: _rename_file_system(value, replace) if cls == "GorillaFileSystem" else map_strings(value, replace)
        for cls, value in config.items()
    }


def _candidates(draft: Draft) -> tuple[list[str], list[str], list[str]]:
    """File-system names, Twitter users and people that may be replaced."""
    truth_strings = _truth_strings(draft)
    # a name that also occurs in a file's content is kept: contents are data and stay as they
    # are, and a ground-truth value copied from a file ("forward it exactly") must still match
    content_words = set(re.findall(r"[\w.\-]+", _file_contents(draft.config)))

    def ok(name: str) -> bool:
        return _safe(name, truth_strings) and name not in content_words

    people = [name for name in _message_people(draft) if ok(name)]
    files = [name for name in dict.fromkeys(_file_system_names(draft.config)) if ok(name) and name not in people]
    users = [name for name in _twitter_users(draft.config) if ok(name) and name not in people and name not in files]
    return files, users, people


def _mapping(draft: Draft, rng: random.Random) -> dict[str, str]:
    files, users, people = _candidates(draft)
    if not (files or users or people):
        return {}
    calls = [call.to_python() for turn in draft.truth for call in turn]
    text = json.dumps([draft.config, draft.turns, calls, draft.base.ground_truth]).lower()
    file_scopes = directory_listings(draft.config, draft.base.long_context)
    people_scopes = [_message_people(draft)]
    user_scopes = [_twitter_users(draft.config)]
    entity_bank = _bank(ENTITY_WORDS, text)
    mapping = _assign(
        [
            (files, entity_bank, file_scopes),
            (users, entity_bank, user_scopes),
            (people, _bank(PEOPLE, text), people_scopes),
        ],
        rng,
    )
    queries = search_queries(_canonical_calls(draft))
    scopes = file_scopes + user_scopes + people_scopes
    while True:  # drop replacements that change an order or a search, until none does
        broken = _order_breaks(mapping, scopes) | _search_breaks(mapping, draft, queries)
        if not broken:
            return mapping
        mapping = {old: new for old, new in mapping.items() if old not in broken}


def _explicit_messages(draft: Draft) -> Callable[[Mapping[str, str]], None]:
    """Write the messaging backend's default user map and inbox into the scenario, so that they
    are renamed with the rest; the returned function undoes it when no person was renamed."""
    people = _message_people(draft)
    scenario = draft.config.get("MessageAPI")
    defaults = _message_defaults(draft.base.release) if people else {}
    missing = {key: value for key, value in defaults.items() if key not in (scenario or {})}
    if missing:
        draft.config["MessageAPI"] = {**(scenario or {}), **missing}

    def settle(mapping: Mapping[str, str]) -> None:
        if missing and not any(person in mapping for person in people):
            if scenario is None:
                del draft.config["MessageAPI"]
            else:
                draft.config["MessageAPI"] = scenario

    return settle


def perturb_values(draft: Draft, rng: random.Random, style: str | None) -> None:
    """Replace file/folder names, Twitter user names and people consistently (module docstring)."""
    settle = _explicit_messages(draft)
    mapping = _mapping(draft, rng)
    settle(mapping)
    apply_values(draft, mapping)


def apply_values(draft: Draft, mapping: Mapping[str, str]) -> None:
    """Replace the names of ``mapping`` (original → new) in the scenario, the user turns and
    the ground truth, and record them in the draft's value map."""
    if not mapping:
        return
    replace = replacer(mapping)
    draft.config = _renamed_config(draft.config, replace)
    draft.turns = [[{**m, "content": replace(m["content"])} for m in turn] for turn in draft.turns]
    # values only: the keys are parameter names (perhaps renamed to a word that is also a name)
    draft.truth = [
        [type(c)(c.name, (), {k: map_strings(v, replace) for k, v in c.kwargs.items()}) for c in turn]
        for turn in draft.truth
    ]
    draft.values.update(mapping)
    draft.changed |= {"config", "turns", "truth"}
