"""Ground-truth parity with the official engine on all 800 entries (every result string, the
public state and the RNG state of every instance after every turn)."""

from __future__ import annotations

import pytest

from envs._official import DEFAULT_VERSION, PAPER_VERSION, selected_version
from tests.oracle import require_official
from tests.parity import replay_both
from toolenv.data import CATEGORIES, load_tasks

#: holds for every pinned release: CI runs this file again on the paper's (see tests/release_oracle.py)
pytestmark = pytest.mark.release


#: ground-truth calls per category and release (so that a replay that silently skipped some fails)
GROUND_TRUTH_CALLS = {
    DEFAULT_VERSION: {"base": 1142, "miss_func": 1140, "miss_param": 1140, "long_context": 1203},
    PAPER_VERSION: {"base": 1161, "miss_func": 1159, "miss_param": 1159, "long_context": 1222},
}


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
    assert calls == GROUND_TRUTH_CALLS[selected_version()][category]
