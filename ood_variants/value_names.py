"""Replacement names for :func:`ood_variants.values.perturb_values` that keep a name's shape.

A name is split into leading dots, a stem and a suffix (``.hidden_file`` → ``"."``,
``hidden_file``, ``""``; ``Q4_summary.doc`` → ``""``, ``Q4_summary``, ``.doc``). Only the stem's
words (runs of two or more letters, camelCase split) are replaced, each by a bank word in the
same case (``lower``, ``Capitalized``, ``UPPER``); the dots, the suffix, digits, single letters
and separators stay as they are. So a hidden file stays hidden, an extension stays the same,
``History101.txt`` becomes ``Beacon101.txt`` and no new character (``/``, ``*``, ``(`` …)
appears. A name with no word (``2024``, ``a_b``) or a stem the split does not cover is not
replaced.

:func:`ordered_names` gives the replacements of one kind of name (file-system entries, Twitter
users, people) strictly increasing in the old names' order, each within bounds (the kept names
around it), so a sorted listing ("the alphabetically first file") keeps its order.
"""

from __future__ import annotations

import random
import re
from typing import Mapping, Sequence

#: leading dots, a stem without dots, then ``.ext`` parts (letters and digits only)
_NAME = re.compile(r"(\.*)([^.]+)((?:\.[A-Za-z0-9]+)*)")
#: words (camelCase split), upper-case runs, digit runs, anything else (separators)
_TOKENS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]+")

Parts = tuple[str, tuple[str, ...], str]


def name_parts(name: str) -> Parts | None:
    """``(leading dots, stem tokens, suffix)``; None when the name has no word to replace."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    prefix, stem, suffix = match.groups()
    tokens = tuple(_TOKENS.findall(stem))
    if "".join(tokens) != stem or not any(is_word(token) for token in tokens):
        return None
    return prefix, tokens, suffix


def is_word(token: str) -> bool:
    return len(token) >= 2 and token.isascii() and token.isalpha()


def word_count(parts: Parts) -> int:
    return sum(1 for token in parts[1] if is_word(token))


def shaped(word: str, token: str) -> str:
    """``word`` in the case of ``token``."""
    if token.isupper():
        return word.upper()
    return word.capitalize() if token[0].isupper() else word.lower()


def build(parts: Parts, words: Sequence[str]) -> str:
    """The name with its words replaced, in order, by ``words`` (shaped)."""
    prefix, tokens, suffix = parts
    replacements = iter(words)
    return prefix + "".join(shaped(next(replacements), t) if is_word(t) else t for t in tokens) + suffix


def case_signature(name: str) -> tuple[str, ...] | None:
    """The shape a replacement keeps: dots, suffix, and per token its case class (``a``, ``A``,
    ``AA``) for words or the token itself (digits, single letters, separators)."""
    parts = name_parts(name)
    if parts is None:
        return None
    prefix, tokens, suffix = parts
    classes = tuple(("AA" if t.isupper() else "A" if t[0].isupper() else "a") if is_word(t) else t for t in tokens)
    return (prefix, *classes, suffix)


def _within(name: str, low: str | None, high: str | None) -> bool:
    return (low is None or low < name) and (high is None or name < high)


def ordered_names(
    olds: Sequence[str],
    bank: Sequence[str],
    rng: random.Random,
    bounds: Mapping[str, tuple[str | None, str | None]],
    used: set[str],
) -> dict[str, str]:
    """Replacements for ``olds``: strictly increasing in sorted old order (so their relative
    order holds in every listing), each strictly within its ``bounds`` (the nearest kept names
    below and above it), each led by a bank word not in ``used`` (then added to it). A name
    with no fitting word is left out (kept)."""
    words = sorted(bank)
    todo = sorted(olds)
    mapping: dict[str, str] = {}
    previous: str | None = None
    for index, old in enumerate(todo):
        parts = name_parts(old)
        if parts is None:
            continue
        rest = [rng.choice(words) for _ in range(word_count(parts) - 1)]
        low, high = bounds.get(old, (None, None))
        low = previous if low is None or (previous is not None and previous > low) else low
        fitting = [w for w in words if w not in used and _within(build(parts, [w, *rest]), low, high)]
        if not fitting:
            continue
        room = len(todo) - index - 1  # leave words above for the names still to come
        word = rng.choice(fitting[: max(1, len(fitting) - room)])
        others = [w for w in words if w != word] or words
        varied = [rng.choice(others) if w == word else w for w in rest]  # no word twice in a name
        if _within(build(parts, [word, *varied]), low, high):
            rest = varied
        used.add(word)
        previous = mapping[old] = build(parts, [word, *rest])
    return mapping
