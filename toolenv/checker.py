"""The BFCL multi-turn checker: replay a trajectory and the ground truth, compare per turn.

Both sides are replayed from scratch on fresh backends, so an environment bug cannot hide a
scoring bug. The rules are BFCL's (``multi_turn_checker``), turn by turn:

1. the model's steps of the turn run on the model side; the ground-truth calls of the turn run
   on the ground-truth side (always, even when they are ``[]``);
2. a turn whose ground truth is empty is not checked (its calls still changed the state);
3. otherwise the model must have produced at least one non-empty step in the turn
   (``empty_turn``), every public attribute of every ground-truth instance must equal the
   model's (``state_mismatch``), and the turn's ground-truth result strings must be contained,
   as a multiset, in all model results so far (``response_mismatch``).

The first failing turn decides; a trajectory with a different number of turns than the ground
truth fails as ``force_terminated``. The entry scores 1 only if every checked turn passes.

The ground-truth side is deterministic per task (and release). The first time a task is
checked its ground truth is replayed alongside the model's turns; from the second time on,
:func:`truth_replay` holds it (per turn: its result strings and a private copy of every
instance's public state), so that scoring a group of trajectories of one task (an RL group,
several models) replays the ground truth about once. Copying the state costs more than one
replay, hence not on first use. The model side is always replayed from scratch.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.data import Task
from toolenv.executor import Session

#: model steps by turn: ``turns[t][s]`` is the list of calls of step s of turn t
ModelTurns = Sequence[Sequence[Sequence[Call]]]

FAILURES = ("force_terminated", "empty_turn", "state_mismatch", "response_mismatch")


@dataclass(frozen=True)
class StateDiff:
    """One differing attribute: its class, name, and both values (repr, shortened)."""

    class_name: str
    attribute: str
    expected: str
    got: str

    def to_dict(self) -> dict[str, str]:
        return {"class": self.class_name, "attribute": self.attribute, "expected": self.expected, "got": self.got}


@dataclass(frozen=True)
class TurnVerdict:
    turn: int
    checked: bool
    passed: bool
    failure: str | None = None
    state_diff: tuple[StateDiff, ...] = ()
    missing_results: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "checked": self.checked,
            "passed": self.passed,
            "failure": self.failure,
            "state_diff": [d.to_dict() for d in self.state_diff],
            "missing_results": list(self.missing_results),
        }


@dataclass(frozen=True)
class Verdict:
    """The decision on one entry. ``turns`` holds the turns that were replayed, in order."""

    task_id: str
    passed: bool
    failure: str | None = None
    failed_turn: int | None = None
    turns: tuple[TurnVerdict, ...] = field(default_factory=tuple)

    @property
    def score(self) -> float:
        return 1.0 if self.passed else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "passed": self.passed,
            "failure": self.failure,
            # -1 rather than None: the type of each info field must not vary between episodes
            # (Gymnasium's vector envs batch info values into typed arrays)
            "failed_turn": -1 if self.failed_turn is None else self.failed_turn,
            "turns": [t.to_dict() for t in self.turns],
        }


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxset, _REPR.maxstring, _REPR.maxother = 4, 12, 12, 12, 120, 200


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any, limit: int = 300) -> str:
    """A bounded repr: a model can build arbitrarily large state, the report must stay small."""
    return truncate(_REPR.repr(value), limit)


@dataclass(frozen=True)
class TruthTurn:
    """The ground truth's side of one turn: its result strings, and the public state of every
    instance after it (``{class: {attribute: value}}``, a private copy: read it, never change it)."""

    results: tuple[str, ...]
    state: dict[str, dict[str, Any]]


#: where :func:`truth_replay` keeps a task's replay, and where a first check marks the task
#: (in the task's ``__dict__``: a cache, not part of the frozen task's value)
_TRUTH, _CHECKED = "_truth_replay", "_truth_checked"


def truth_replay(task: Task) -> tuple[TruthTurn, ...]:
    """The ground truth of ``task`` replayed on fresh backends, turn by turn (cached per task)."""
    cached = task.__dict__.get(_TRUTH)
    if cached is None:
        session = Session.for_task(task)
        turns = []
        for calls in task.ground_truth_calls:
            results = tuple(result.text for result in session.execute_all(calls))
            turns.append(TruthTurn(results, session.state_copy()))
        cached = task.__dict__[_TRUTH] = tuple(turns)
    return cached


def state_differences(model: Session, truth: dict[str, dict[str, Any]]) -> tuple[StateDiff, ...]:
    """Public attributes of the ground truth's instances (``truth``: their public state) that the
    model's instances do not equal (Python ``!=``, as BFCL: ``50 == 50.0`` here)."""
    diffs = []
    for class_name, truth_state in truth.items():
        model_instance = model.instances[class_name]
        for attribute, expected in truth_state.items():
            got = getattr(model_instance, attribute, None)
            if got != expected:
                diffs.append(StateDiff(class_name, attribute, _short(expected), _short(got)))
    return tuple(diffs)


def missing_results(expected: Sequence[str], produced: Sequence[str]) -> tuple[str, ...]:
    """The expected result strings not contained (as a multiset) in the produced ones."""
    remaining = Counter(produced)
    missing = []
    for text in expected:
        if remaining[text] > 0:
            remaining[text] -= 1
        else:
            missing.append(text)
    return tuple(missing)


class TurnChecker:
    """Incremental form of the checker: feed the model's steps turn by turn.

    It owns its own fresh model session (never the live episode's) and reads the task's cached
    ground-truth replay, so the environment can report per-turn verdicts as turns close at
    O(turns) cost in total.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self._model = Session.for_task(task)
        self._replayed: tuple[TruthTurn, ...] | None = None
        self._truth: Session | None = None
        if task.__dict__.get(_TRUTH) is not None or task.__dict__.get(_CHECKED):
            self._replayed = truth_replay(task)
        else:  # the first check of this task: replay the ground truth alongside
            task.__dict__[_CHECKED] = True
            self._truth = Session.for_task(task)
        self._model_results: list[str] = []
        self.turns: list[TurnVerdict] = []

    @property
    def failed(self) -> TurnVerdict | None:
        return next((t for t in self.turns if not t.passed), None)

    def close_turn(self, steps: Sequence[Sequence[Call]]) -> TurnVerdict:
        """Replay the next turn on both sides and judge it."""
        turn = len(self.turns)
        if turn >= len(self.task.ground_truth):
            raise IndexError(f"{self.task.id} has only {len(self.task.ground_truth)} turns")
        truth = self._truth_turn(turn)
        for step in steps:
            self._model_results.extend(result.text for result in self._model.execute_all(step))
        if not self.task.ground_truth[turn]:
            verdict = TurnVerdict(turn, checked=False, passed=True)
        elif len(steps) == 0 or (len(steps) == 1 and len(steps[0]) == 0):  # BFCL's exact rule
            verdict = TurnVerdict(turn, True, False, "empty_turn")
        elif diffs := state_differences(self._model, truth.state):
            verdict = TurnVerdict(turn, True, False, "state_mismatch", diffs)
        elif missing := missing_results(truth.results, self._model_results):
            verdict = TurnVerdict(turn, True, False, "response_mismatch", (), missing)
        else:
            verdict = TurnVerdict(turn, True, True)
        self.turns.append(verdict)
        return verdict

    def _truth_turn(self, turn: int) -> TruthTurn:
        if self._replayed is not None:
            return self._replayed[turn]
        assert self._truth is not None
        results = tuple(result.text for result in self._truth.execute_all(self.task.ground_truth_calls[turn]))
        return TruthTurn(results, self._truth.public_state())  # the live state: read at once

    def verdict(self) -> Verdict:
        """The entry's verdict from the turns closed so far (BFCL: the first failure decides)."""
        failed = self.failed
        if failed is not None:
            kept = tuple(t for t in self.turns if t.turn <= failed.turn)
            return Verdict(self.task.id, False, failed.failure, failed.turn, kept)
        if len(self.turns) != len(self.task.ground_truth):
            return Verdict(self.task.id, False, "force_terminated", None, tuple(self.turns))
        return Verdict(self.task.id, True, None, None, tuple(self.turns))


def check(task: Task, model_turns: ModelTurns) -> Verdict:
    """Replay ``model_turns`` and the task's ground truth on fresh backends; decide (see module)."""
    if len(model_turns) != len(task.ground_truth):
        return Verdict(task.id, False, "force_terminated", None, ())
    checker = TurnChecker(task)
    for steps in model_turns:
        if not checker.close_turn(steps).passed:
            break
    return checker.verdict()


def turns_passed(task: Task, model_turns: ModelTurns, verdict: Verdict) -> int:
    """Per-turn credit: how many turns passed before the first failing one (all of them for a
    passing entry). A force-terminated entry (fewer or more turns than the task) gets BFCL's 0
    as its score but is credited here for the turns it did play, replayed up to the first
    failure; the headline score stays BFCL's 0/1. A turn that expects no call passes, as the
    checker passes it."""
    if verdict.passed:
        return len(task.ground_truth)
    if verdict.failed_turn is not None:
        return verdict.failed_turn
    checker = TurnChecker(task)
    for steps in model_turns[: len(task.ground_truth)]:
        if not checker.close_turn(steps).passed:
            break
    passed = 0
    for turn in checker.turns:
        if not turn.passed:
            break
        passed += 1
    return passed
