"""Generators derived from several parts (a spec name, a seed, a task id, ...), independent of
call order and of ``PYTHONHASHSEED``: what OOD variants and curriculum cuts draw from."""

from __future__ import annotations

import hashlib
import random


def derived_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded by the sha256 of the parts' text."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
