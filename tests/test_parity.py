"""Ground-truth parity with the official engine on all 800 entries (every result string, the
public state and the RNG state of every instance after every turn)."""

from __future__ import annotations

import pytest

from tests.oracle import require_official
from tests.parity import replay_both
from toolenv.data import CATEGORIES, load_tasks


@pytest.mark.parametrize("category", CATEGORIES)
def test_ground_truth_replay_matches_official(category: str) -> None:
    require_official()
    tasks = load_tasks(category)
    assert len(tasks) == 200
    calls = 0
    mismatches = []
    for task in tasks:
        n, found = replay_both(task)
        calls += n
        mismatches += found
    assert not mismatches, "\n".join(str(m) for m in mismatches[:10])
    assert calls == {"base": 1142, "miss_func": 1140, "miss_param": 1140, "long_context": 1203}[category]
