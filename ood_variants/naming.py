"""New names for tools and parameters: synonyms, paraphrases, opaque codes, naming styles.

All functions are pure given their ``random.Random``; every produced name is a Python
identifier that is not a keyword (so every call format, python lists included, can carry it).
"""

from __future__ import annotations

import keyword
import random
import re
from functools import lru_cache
from typing import Collection, Sequence

from envs import RELEASE_PACKAGES, all_backend_classes
from envs._official import DEFAULT_VERSION
from ood_variants.banks import FILLER_WORDS, NAME_SYNONYMS, WORD_SYNONYMS

TOOL_STYLES = ("synonym", "paraphrase", "opaque", "camel", "pascal")
PARAM_STYLES = ("synonym", "opaque", "camel")

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@lru_cache(maxsize=1)
def canonical_tool_names() -> frozenset[str]:
    """Every tool name of every BFCL API in every pinned release (a variant name must never be
    one of them, whichever release the task comes from, and a variant is the same in each)."""
    releases = (DEFAULT_VERSION, *RELEASE_PACKAGES)
    return frozenset(name for v in releases for cls in all_backend_classes(v).values() for name in cls.tool_names())


def words(name: str) -> list[str]:
    """``"get_stock_info"`` → ``[get, stock, info]``; ``"lockDoors"`` → ``[lock, doors]``."""
    return [w.lower() for part in name.split("_") for w in _WORDS.findall(part)]


def join(parts: Sequence[str], style: str) -> str:
    flat = [w for part in parts for w in part.split("_") if w]
    if style == "camel":
        return flat[0] + "".join(w[:1].upper() + w[1:] for w in flat[1:])
    if style == "pascal":
        return "".join(w[:1].upper() + w[1:] for w in flat)
    return "_".join(flat)


def synonym_words(name: str, rng: random.Random) -> list[str]:
    """The words of ``name`` with each replaced by a seeded synonym where the bank has one."""
    if name in NAME_SYNONYMS:
        return [rng.choice(NAME_SYNONYMS[name])]
    return [rng.choice(WORD_SYNONYMS[w]) if w in WORD_SYNONYMS else w for w in words(name)]


def valid(name: str, taken: Collection[str]) -> bool:
    return (
        name.isidentifier() and not keyword.iskeyword(name) and name not in taken and name not in canonical_tool_names()
    )


def tool_name(name: str, style: str, rng: random.Random, taken: Collection[str]) -> str:
    """A new name for tool ``name`` in a style (``opaque`` is handled by the caller: it numbers
    the whole tool list). Falls back to adding a neutral word when the style leaves the name
    unchanged (``cd`` in camel case) or collides."""
    for attempt in range(8):
        if style in ("camel", "pascal"):
            base = words(name) if attempt == 0 else synonym_words(name, rng)
            candidate = join(base, style)
        elif style == "paraphrase":
            parts = synonym_words(name, rng)
            # object first, verb last: get_stock_info → equity_details_fetch
            candidate = join(parts[1:] + parts[:1] if len(parts) > 1 else parts + [rng.choice(FILLER_WORDS)], "snake")
        else:  # synonym
            candidate = join(synonym_words(name, rng), "snake")
        if attempt >= 4:
            candidate = join(
                [candidate, rng.choice(FILLER_WORDS)], "snake" if style not in ("camel", "pascal") else style
            )
        if candidate != name and valid(candidate, taken):
            return candidate
    return _numbered(name, taken)


def param_name(name: str, style: str, rng: random.Random, taken: Collection[str]) -> str:
    """A new name for a parameter (unique among ``taken``, the tool's other parameters)."""
    for attempt in range(8):
        if style == "camel":
            base = words(name) if attempt == 0 else [rng.choice(WORD_SYNONYMS.get(w, (w,))) for w in words(name)]
            candidate = join(base, "camel")
        else:
            candidate = join([rng.choice(WORD_SYNONYMS[w]) if w in WORD_SYNONYMS else w for w in words(name)], "snake")
        if attempt >= 4:
            candidate = join(
                [candidate, rng.choice(("value", "arg", "input"))], "camel" if style == "camel" else "snake"
            )
        if (
            candidate != name
            and candidate.isidentifier()
            and not keyword.iskeyword(candidate)
            and candidate not in taken
        ):
            return candidate
    return _numbered(name + "_arg", taken)


def _numbered(name: str, taken: Collection[str]) -> str:
    number = 2
    while not valid(f"{name}_{number}", taken):
        number += 1
    return f"{name}_{number}"
