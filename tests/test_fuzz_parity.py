"""Differential property test: random call sequences drawn from the tool schemas, the entries'
configs and the ground-truth argument pool, run on our executor and on the official engine."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import random_sequence
from tests.oracle import require_official
from tests.parity import replay_both
from toolenv.data import load_tasks

#: holds for every pinned release: CI runs this file again on the paper's (see tests/release_oracle.py)
pytestmark = pytest.mark.release

# CI budget: SEQUENCES random sequences of up to 3 turns x (6 random + 4 ground-truth) calls.
SEQUENCES = 5000
_TASKS = load_tasks()


@given(index=st.integers(0, len(_TASKS) - 1), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=SEQUENCES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_call_sequences_match_official(index: int, seed: int) -> None:
    require_official()
    task = _TASKS[index]
    sequence = random_sequence(random.Random(seed), task)
    _, mismatches = replay_both(task, sequence)
    assert not mismatches, "\n".join(str(m) for m in mismatches[:5])
