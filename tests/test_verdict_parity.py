"""Verdict parity with the official ``multi_turn_checker`` (and the eval runner's turn-count rule)
on all 800 ground truths and on a mutation suite derived from them."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from tests.oracle import _reset_official_process_state, forget_official_instances, require_official
from toolenv.calls import Call, parse_python_call
from toolenv.checker import check
from toolenv.data import CATEGORIES, Task, load_tasks, raw_entries

#: holds for every pinned release: CI runs this file again on the paper's (see tests/release_oracle.py)
pytestmark = pytest.mark.release

OFFICIAL_FAILURES = {
    "multi_turn:empty_turn_model_response": "empty_turn",
    "multi_turn:instance_state_mismatch": "state_mismatch",
    "multi_turn:execution_response_mismatch": "response_mismatch",
}
_names = itertools.count()

Turns = list[list[list[str]]]  # turn → step → call string


def official_verdict(task: Task, entry: dict[str, Any], turns: Turns) -> tuple[bool, str | None]:
    """The official decision: the runner's turn-count rule, then multi_turn_checker."""
    require_official()
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker as module

    if len(turns) != len(task.ground_truth):
        return False, "force_terminated"
    _reset_official_process_state()
    name = f"toolenvverdict{next(_names)}"
    try:
        result = module.multi_turn_checker(turns, [list(t) for t in task.ground_truth], entry, task.bfcl_category, name)
    finally:
        forget_official_instances(name)
    if result["valid"]:
        return True, None
    return False, OFFICIAL_FAILURES.get(result["error_type"], result["error_type"])


def our_verdict(task: Task, turns: Turns) -> tuple[bool, str | None]:
    verdict = check(task, [[[parse_python_call(c) for c in step] for step in turn] for turn in turns])
    return verdict.passed, verdict.failure


def _alter(call: Call) -> Call | None:
    for key, value in call.kwargs.items():
        if isinstance(value, bool):
            return Call(call.name, call.args, {**call.kwargs, key: not value})
        if isinstance(value, (int, float)):
            return Call(call.name, call.args, {**call.kwargs, key: value + 1})
        if isinstance(value, str):
            return Call(call.name, call.args, {**call.kwargs, key: value + "_x"})
    return None


def mutants(task: Task, rng: random.Random) -> list[tuple[str, Turns]]:
    """Mutated copies of the ground truth (one step per turn unless the mutation splits)."""
    gt = [list(turn) for turn in task.ground_truth]
    one_step = lambda turns: [[t] if t else [] for t in turns]  # noqa: E731
    found: list[tuple[str, Turns]] = [("ground_truth", one_step(gt))]
    slots = [(t, i) for t, turn in enumerate(gt) for i in range(len(turn))]
    if slots:
        t, i = rng.choice(slots)
        found.append(("drop", one_step([turn[:i] + turn[i + 1 :] if k == t else turn for k, turn in enumerate(gt)])))
        t, i = rng.choice(slots)
        found.append(
            ("duplicate", one_step([turn[: i + 1] + turn[i:] if k == t else turn for k, turn in enumerate(gt)]))
        )
        t, i = rng.choice(slots)
        altered = _alter(parse_python_call(gt[t][i]))
        if altered is not None:
            found.append(
                (
                    "alter",
                    one_step(
                        [
                            [altered.to_python() if (k, j) == (t, i) else c for j, c in enumerate(turn)]
                            for k, turn in enumerate(gt)
                        ]
                    ),
                )
            )
        t, i = rng.choice(slots)
        target = t + rng.choice([-1, 1])
        if 0 <= target < len(gt):
            moved = [list(turn) for turn in gt]
            moved[target].append(moved[t].pop(i))
            found.append(("move", one_step(moved)))
        t, _ = rng.choice(slots)
        found.append(("empty_turn", one_step([[] if k == t else turn for k, turn in enumerate(gt)])))
        found.append(("split_steps", [[[c] for c in turn] for turn in gt]))
        found.append(("empty_step", [[[], turn] if turn else [[]] for turn in gt]))
    multi = [t for t, turn in enumerate(gt) if len(turn) > 1]
    if multi:
        t = rng.choice(multi)
        found.append(("reorder", one_step([list(reversed(turn)) if k == t else turn for k, turn in enumerate(gt)])))
    found.append(("extra_turn", one_step(gt + [["ls()"]])))
    found.append(("missing_turn", one_step(gt[:-1])))
    return found


@pytest.mark.parametrize("category", CATEGORIES)
def test_verdicts_match_official_on_ground_truth_and_mutants(category: str) -> None:
    require_official()
    rng = random.Random(category)
    entries = {entry["id"]: entry for entry in raw_entries(category)}
    checked, disagreements, outcomes = 0, [], set()
    for task in load_tasks(category):
        for kind, turns in mutants(task, rng):
            ours = our_verdict(task, turns)
            theirs = official_verdict(task, entries[task.id], turns)
            checked += 1
            outcomes.add((kind, ours))
            if ours != theirs:
                disagreements.append((task.id, kind, ours, theirs))
    print(f"{category}: {checked} verdicts compared")
    assert not disagreements, disagreements[:5]
    assert ("ground_truth", (True, None)) in outcomes
    assert {o[1][1] for o in outcomes} >= {
        None,
        "state_mismatch",
        "empty_turn",
        "force_terminated",
        "response_mismatch",
    }
    assert checked > 1500
