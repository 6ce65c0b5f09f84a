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
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from typing import Any, Iterable

from envs import backend_class
from envs._official import official_literal
from ood_variants.banks import ENTITY_WORDS, PEOPLE
from ood_variants.draft import Draft, map_strings

MIN_LENGTH = 3


def _file_system_names(config: dict[str, Any]) -> list[str]:
    names: list[str] = []

    def walk(contents: dict[str, Any]) -> None:
        for name, node in contents.items():
            names.append(name)
            if isinstance(node, dict) and node.get("type") == "directory":
                walk(node.get("contents") or {})

    for root in (config.get("GorillaFileSystem", {}).get("root") or {}).values():
        if isinstance(root, dict):
            walk(root.get("contents") or {})
    return names


def _twitter_users(config: dict[str, Any]) -> list[str]:
    twitter = config.get("TwitterAPI") or {}
    users = [twitter.get("username")] if isinstance(twitter.get("username"), str) else []
    users += [t.get("username") for t in (twitter.get("tweets") or {}).values() if isinstance(t, dict)]
    users += [u for u in twitter.get("following_list") or [] if isinstance(u, str)]
    return [u for u in users if isinstance(u, str)]


def _message_people(draft: Draft) -> list[str]:
    """Names in the messaging scenario's user map (the scenario's own, or the backend default)."""
    if "MessageAPI" not in draft.base.involved_classes:
        return []
    scenario = draft.config.get("MessageAPI") or {}
    user_map = scenario.get("user_map") if "user_map" in scenario else _default_user_map(draft.base.release)
    return [name for name in user_map if isinstance(name, str)]


def _default_user_map(version: str) -> dict[str, str]:
    probe = backend_class("MessageAPI", version)()
    probe.load_scenario({})
    return dict(probe.user_map)  # type: ignore[attr-defined]


def _truth_strings(draft: Draft) -> list[str]:
    found: list[str] = []
    map_strings([list(call.kwargs.values()) for turn in draft.truth for call in turn], lambda s: found.append(s) or s)
    return found


@lru_cache(maxsize=1)
def interpreted_file_names() -> frozenset[str]:
    """File names the file-system backend treats specially in long-context mode (exempt from
    the filler): renaming them would change what the backend loads."""
    return frozenset(official_literal("long_context.py", "FILES_TAIL_USED"))


def _file_contents(config: dict[str, Any]) -> str:
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


def _safe(name: str, truth_strings: Iterable[str]) -> bool:
    if name in interpreted_file_names() or len(name) < MIN_LENGTH or not re.fullmatch(r"[\w.\- ]+", name):
        return False
    return not any(s != name and s and s in name for s in truth_strings)


def _new_person(rng: random.Random, taken: set[str], text: str) -> str:
    for _ in range(50):
        new = rng.choice(PEOPLE)
        if new not in taken and new not in text:
            return new
    raise RuntimeError("no free replacement name")  # 20 names for at most a handful of people


def _new_name(old: str, rng: random.Random, taken: set[str], text: str) -> str:
    stem, dot, extension = old.rpartition(".") if "." in old.strip(".") else (old, "", "")
    for _ in range(50):
        words = rng.sample(ENTITY_WORDS, 2 if len(stem) > 8 else 1)
        new = "_".join(words) + (dot + extension if dot else "")
        if new not in taken and new not in text:
            return new
    raise RuntimeError("no free replacement name")  # 40 words: cannot happen for BFCL's scenarios


def _rename_file_system(node: Any, replace: Any) -> Any:
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


def perturb_values(draft: Draft, rng: random.Random, style: str | None) -> None:
    """Replace file/folder names and Twitter user names consistently (see module docstring)."""
    truth_strings = _truth_strings(draft)
    # a name that also occurs in a file's content is kept: contents are data and stay as they
    # are, and a ground-truth value copied from a file ("forward it exactly") must still match
    content_words = set(re.findall(r"[\w.\-]+", _file_contents(draft.config)))
    people = [name for name in _message_people(draft) if _safe(name, truth_strings) and name not in content_words]
    candidates = list(dict.fromkeys(_file_system_names(draft.config) + _twitter_users(draft.config)))
    candidates = [
        name for name in candidates if _safe(name, truth_strings) and name not in people and name not in content_words
    ]
    if not candidates and not people:
        return
    if people and "user_map" not in (draft.config.get("MessageAPI") or {}):
        # the backend's default map, made explicit so that it can be renamed with the rest
        draft.config["MessageAPI"] = {
            **(draft.config.get("MessageAPI") or {}),
            "user_map": _default_user_map(draft.base.release),
        }
    text = json.dumps([draft.config, draft.turns, truth_strings])
    taken: set[str] = set()
    mapping = {}
    for name in candidates + people:
        new = _new_person(rng, taken, text) if name in people else _new_name(name, rng, taken, text)
        taken.add(new)
        mapping[name] = new
    ordered = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w\-]|\.\w)")

    def replace(value: str) -> str:
        return pattern.sub(lambda m: mapping[m.group(1)], value)

    draft.config = {
        cls: _rename_file_system(value, replace) if cls == "GorillaFileSystem" else map_strings(value, replace)
        for cls, value in draft.config.items()
    }
    draft.turns = [[{**m, "content": replace(m["content"])} for m in turn] for turn in draft.turns]
    # values only: the keys are parameter names (perhaps renamed to a word that is also a name)
    draft.truth = [
        [type(c)(c.name, (), {k: map_strings(v, replace) for k, v in c.kwargs.items()}) for c in turn]
        for turn in draft.truth
    ]
    draft.values.update(mapping)
    draft.changed |= {"config", "turns", "truth"}
