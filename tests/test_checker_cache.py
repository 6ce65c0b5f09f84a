"""The checker's cached ground-truth side, and the executor's JSON encoding: both are speed-ups
that must never change a verdict or a result string."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from toolenv import data
from toolenv.calls import Call
from toolenv.checker import TruthTurn, check, truth_replay
from toolenv.data import CATEGORIES, Task, load_tasks
from toolenv.executor import Session, stringify


def fresh_tasks() -> list[Task]:
    """New task objects (nothing cached on them)."""
    data._load_category.cache_clear()
    return load_tasks()


def mutants(task: Task, rng: random.Random) -> list[list[list[list[Call]]]]:
    """Model-like trajectories of one task: verbatim, and calls dropped, repeated or moved."""
    truth = [list(turn) for turn in task.ground_truth_calls]
    out = [[[turn] for turn in truth]]
    for _ in range(5):
        turns = [list(turn) for turn in truth]
        t = rng.randrange(len(turns))
        if turns[t]:
            kind = rng.choice(("drop", "repeat", "reverse", "move"))
            if kind == "drop":
                turns[t].pop(rng.randrange(len(turns[t])))
            elif kind == "repeat":
                turns[t].append(turns[t][-1])
            elif kind == "reverse":
                turns[t].reverse()
            elif t + 1 < len(turns):
                turns[t + 1] = turns[t] + turns[t + 1]
                turns[t] = []
        out.append([[turn] if turn else [] for turn in turns])
    return out


def test_cached_and_live_ground_truth_give_the_same_verdicts_on_every_task() -> None:
    """Each task is checked on fresh objects (its first check replays the ground truth live),
    then again on the same objects (the cached replay): verdicts and per-turn details equal."""
    rng = random.Random(7)
    tasks = fresh_tasks()
    groups = {task.id: mutants(task, rng) for task in tasks}
    first = {task.id: [check(task, run) for run in groups[task.id]] for task in tasks}
    assert all(task.__dict__.get("_truth_replay") is not None for task in tasks)  # built on the second check
    again = {task.id: [check(task, run) for run in groups[task.id]] for task in tasks}
    live = {fresh.id: [check(fresh, run) for run in groups[fresh.id][:1]] for fresh in fresh_tasks()}
    assert again == first
    assert {key: verdicts[:1] for key, verdicts in first.items()} == live
    passed = sum(v.passed for verdicts in first.values() for v in verdicts)
    assert 800 <= passed < 800 * 6  # every verbatim run passes, and mutants fail too


def test_the_cached_replay_equals_a_live_replay_and_is_never_changed_by_scoring() -> None:
    for category in CATEGORIES:
        for task in load_tasks(category)[::20]:
            replay = truth_replay(task)
            session = Session.for_task(task)
            for turn, calls in zip(replay, task.ground_truth_calls):
                assert isinstance(turn, TruthTurn)
                assert turn.results == tuple(result.text for result in session.execute_all(calls))
                assert turn.state == session.public_state()
            # a model that writes into the state it can reach changes its own side only
            check(task, [[[call for call in turn]] for turn in task.ground_truth_calls])
            assert truth_replay(task) is replay
            assert replay[-1].state == session.public_state()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers() | st.floats() | st.booleans(), inner, max_size=4)
    ),
    max_leaves=12,
)


def reference(value: Any) -> str:
    """BFCL's rule, written plainly: ``json.dumps`` for a dict, ``str`` when that fails."""
    try:
        return json.dumps(value)
    except Exception:
        return str(value)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6) | st.integers(), JSONISH | st.tuples(st.integers()), max_size=5))
def test_dict_results_encode_exactly_as_json_dumps(value: dict[Any, Any]) -> None:
    assert stringify(value) == reference(value)


def test_a_failed_encoding_does_not_poison_the_next_one() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    assert stringify(circular) == str(circular)
    assert stringify({"key": object.__name__}) == json.dumps({"key": "object"})
    assert stringify({"a": {1, 2}}) == str({"a": {1, 2}})  # a set is not JSON: str(), as BFCL
    assert stringify({"a": [1, 2]}) == '{"a": [1, 2]}'
