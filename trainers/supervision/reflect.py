"""Process reflection supervision (PRS): reflections on the policy's own trajectories.

A :class:`Reflection` says, for one trajectory, which turn failed and why, which call went
wrong, the state difference and the missing results the checker found, and the corrected call
sequence for the failing turn in the training call format. Two reflectors:

:func:`reflect` (built-in, default)
    Deterministic, from the checker. The trajectory's calls and the task's ground truth are
    replayed turn by turn (:class:`~toolenv.checker.TurnChecker`, the evaluator's own
    rules); the first failing turn gives the failure kind, the state difference and the
    missing results; the turn's calls are compared with the ground-truth calls (positional
    arguments bound to names) to name the first diverging call (wrong function, wrong
    arguments, a missing or an extra call); error results of the turn and calls made on earlier
    turns that needed none are reported too. A trajectory that stopped early (step limit or
    token budget) is judged on the turn it stopped in.
:class:`~trainers.supervision.prs.EndpointJudge`
    The paper's way: an LLM behind an OpenAI-compatible endpoint gets the trajectory log, the
    ground truth and the checker's findings and writes an analysis per turn (intent, mistakes
    and their root cause, the corrected reasoning and ideal call sequence): call A. When a
    turn failed its checks, a second request (call B) shows the user's requests up to that
    turn, the turn's steps and its ground truth, and asks for the core error analysis, three to
    five generalised similar scenarios with their correct call sequences, and one look-alike
    scenario that needs a different tool. Call B is skipped for a turn that was never finished
    (step or length limit), as the paper skipped turn-count mismatches. The release showed
    call B a single, often wrong step (it compared a step index with a turn index and always
    took turn 0's ground truth, docs/paper-methods.md §5.5.4); we show the whole failing turn and its
    own ground truth, the evident intent.

Training data (:func:`reflection_messages`): one SFT conversation per reflection, ``[user:
the reflection request, assistant: the critique]``, chat-templated by the SFT tokenisation like
every other sample. The request holds the episode log (requests, the assistant's raw outputs,
shortened tool results) and, by default, **not** the ground truth, so the policy learns to
find the mistake and the correction itself; ``show_ground_truth=True`` adds the reference calls
to the request as the paper's judge prompt did. Choice documented against the release, whose
SFT prompts reached the model as the ``str()`` of a Python list without any chat template (a
parquet round-trip defect, docs/paper-methods.md §5.5.5 and §10 #8): we template them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.checker import TurnChecker, TurnVerdict, truncate
from toolenv.data import Task
from toolenv.executor import ERROR_PREFIX, keyword_call
from toolenv.formats import Codec
from toolenv.formats.base import PARSE_ERROR_PREFIX
from toolenv.trajectory import Trajectory
from trainers.supervision.hints import no_call_advice, render_calls, turn_request

DIVERGENCES = ("wrong_function", "wrong_arguments", "missing_call", "extra_call")
#: characters kept of each tool result / assistant output in a reflection request
MAX_RESULT_CHARS = 300
MAX_OUTPUT_CHARS = 600


@dataclass(frozen=True)
class CallDivergence:
    """The first place where the turn's calls and the ground-truth calls part ways."""

    index: int  # position in the turn's call sequence (0-based)
    kind: str  # one of DIVERGENCES
    got: str | None  # the policy's call (python text) or None when it is missing
    expected: str | None  # the ground-truth call or None for an extra call
    arguments: tuple[str, ...] = ()  # differing argument names (wrong_arguments)


@dataclass
class Reflection:
    """One reflection record (see the module docstring). ``failed_turn`` is None when every
    turn passed."""

    task_id: str
    passed: bool
    failure: str | None
    failed_turn: int | None
    request: str = ""
    made_calls: list[str] = field(default_factory=list)
    expected_calls: list[str] = field(default_factory=list)
    divergence: CallDivergence | None = None
    state_diff: list[dict[str, str]] = field(default_factory=list)
    missing_results: list[str] = field(default_factory=list)
    error_results: list[str] = field(default_factory=list)
    stray_calls: dict[int, list[str]] = field(default_factory=dict)  # earlier no-call turns → calls made
    stopped_early: bool = False
    corrected: str = ""  # the failing turn's ground truth in the call format, or the no-call advice
    critique: str = ""
    source: str = "builtin"
    kind: str = "trajectory"  # "trajectory" (a whole-episode critique) or "error_turn" (judge call B)
    sample: int | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stray_calls"] = {str(k): v for k, v in self.stray_calls.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Reflection":
        data = dict(data)
        if data.get("divergence") is not None:
            div = dict(data["divergence"])
            div["arguments"] = tuple(div.get("arguments", ()))
            data["divergence"] = CallDivergence(**div)
        data["stray_calls"] = {int(k): list(v) for k, v in data.get("stray_calls", {}).items()}
        return cls(**data)


def _cut(text: Any, limit: int) -> str:
    return truncate(str(text), limit)


def first_divergence(made: Sequence[Call], expected: Sequence[Call]) -> CallDivergence | None:
    """Compare two call sequences (already canonical) position by position."""
    for index in range(max(len(made), len(expected))):
        got = made[index] if index < len(made) else None
        want = expected[index] if index < len(expected) else None
        if got is None:
            return CallDivergence(index, "missing_call", None, want.to_python() if want else None)
        if want is None:
            return CallDivergence(index, "extra_call", got.to_python(), None)
        if got.name != want.name:
            return CallDivergence(index, "wrong_function", got.to_python(), want.to_python())
        if dict(got.kwargs) != dict(want.kwargs) or got.args != want.args:
            keys = sorted(set(got.kwargs) | set(want.kwargs), key=str)
            differing = tuple(k for k in keys if got.kwargs.get(k, _MISSING) != want.kwargs.get(k, _MISSING))
            return CallDivergence(index, "wrong_arguments", got.to_python(), want.to_python(), differing)
    return None


_MISSING = object()


def is_error_result(text: str) -> bool:
    """An executor error, an undecodable block, or a backend's ``{"error": …}`` answer."""
    if text.startswith(ERROR_PREFIX) or text.startswith(PARSE_ERROR_PREFIX):
        return True
    if text.startswith("{") and '"error"' in text:
        try:
            return "error" in json.loads(text)
        except ValueError:
            return False
    return False


def _replay(task: Task, trajectory: Trajectory) -> tuple[list[TurnVerdict], int | None, bool, int]:
    """Per-turn verdicts of the trajectory's turns, the first failing turn, whether the episode
    stopped before it was finished (a turn left open, or turns never reached), and the number
    of turns played."""
    checker = TurnChecker(task)
    model_turns = trajectory.model_turns()[: len(task.ground_truth)]
    for steps in model_turns:
        if not checker.close_turn(steps).passed:
            break
    verdicts = list(checker.turns)
    failed = next((v.turn for v in verdicts if not v.passed), None)
    # the environment records a verdict on every turn it closes: an open last turn means the
    # episode stopped inside it (step limit, token or message budget)
    left_open = bool(trajectory.turns) and trajectory.turns[-1].verdict is None
    stopped_early = left_open or len(model_turns) < len(task.ground_truth)
    if failed is None and stopped_early:
        failed = max(len(model_turns) - 1, 0)  # the unfinished turn
    return verdicts, failed, stopped_early, len(model_turns)


def reflect(task: Task, trajectory: Trajectory, codec: Codec) -> Reflection:
    """The built-in reflection on ``trajectory`` (see the module docstring)."""
    if trajectory.task_id != task.id:
        raise ValueError(f"trajectory of {trajectory.task_id} given with task {task.id}")
    verdicts, failed, stopped_early, played = _replay(task, trajectory)
    if failed is None:
        reflection = Reflection(task.id, True, None, None, source="builtin")
        reflection.critique = f"All {len(task.ground_truth)} turns passed: every request was fulfilled."
        return reflection
    verdict = verdicts[failed] if failed < len(verdicts) and not verdicts[failed].passed else None
    failure = verdict.failure if verdict is not None else "force_terminated"
    turn = trajectory.turns[failed] if failed < len(trajectory.turns) else None
    made = [
        keyword_call(c, task.involved_classes, task.release)
        for step in (turn.steps if turn else [])
        for c in step.calls
    ]
    expected = [keyword_call(c, task.involved_classes, task.release) for c in task.ground_truth_calls[failed]]
    errors = []
    for step in turn.steps if turn else []:
        for call, result in zip(list(step.calls) + [None] * len(step.errors), list(step.results) + list(step.errors)):
            text = str(result)
            if call is None:
                errors.append(f"undecodable call: {_cut(text, MAX_RESULT_CHARS)}")
            elif is_error_result(text):
                errors.append(f"{call.to_python()} → {_cut(text, MAX_RESULT_CHARS)}")
    stray = {}
    for earlier in range(min(failed, len(trajectory.turns))):
        if not task.ground_truth[earlier]:
            calls = [c.to_python() for step in trajectory.turns[earlier].steps for c in step.calls]
            if calls:
                stray[earlier] = calls
    reflection = Reflection(
        task_id=task.id,
        passed=False,
        failure=failure,
        failed_turn=failed,
        request=turn_request(task, failed),
        made_calls=[c.to_python() for c in made],
        expected_calls=[c.to_python() for c in expected],
        divergence=first_divergence(made, expected),
        state_diff=[d.to_dict() for d in (verdict.state_diff if verdict else ())],
        missing_results=[_cut(t, MAX_RESULT_CHARS) for t in (verdict.missing_results if verdict else ())],
        error_results=errors,
        stray_calls=stray,
        stopped_early=stopped_early and failed >= played - 1,
        corrected=render_calls(task, expected, codec) if expected else no_call_advice(task),
    )
    reflection.critique = critique_text(reflection)
    return reflection


_FAILURE_TEXT = {
    "empty_turn": "no call was made, but the request needs calls",
    "state_mismatch": "the calls left the environment in a different state than the request requires",
    "response_mismatch": "the calls did not produce the results the request needs",
    "force_terminated": "the turn was not finished",
}


def critique_text(r: Reflection) -> str:
    """The critique and the corrected call sequence, as the policy is trained to write them."""
    assert r.failed_turn is not None
    lines = [f"Turn {r.failed_turn + 1} failed: {_FAILURE_TEXT.get(r.failure or '', r.failure)}."]
    lines.append(f"The user asked: {r.request}")
    if r.stopped_early:
        lines.append(
            "The episode stopped in this turn before it was finished (step or length limit): "
            "avoid repeating calls and finish each request with a plain-text answer."
        )
    for turn, calls in sorted(r.stray_calls.items()):
        lines.append(f"Turn {turn + 1} needed no call, yet these ran and changed the state: {', '.join(calls)}.")
    d = r.divergence
    if d is not None:
        position = f"Call {d.index + 1}"
        if d.kind == "wrong_function":
            lines.append(f"{position} used the wrong function: {d.got} instead of {d.expected}.")
        elif d.kind == "wrong_arguments":
            lines.append(
                f"{position} had wrong arguments ({', '.join(map(str, d.arguments))}): {d.got} instead of {d.expected}."
            )
        elif d.kind == "missing_call":
            lines.append(
                f"{position} is missing: {d.expected} was never called."
                if r.made_calls
                else f"No call was made; the first needed call is {d.expected}."
            )
        else:
            lines.append(f"{position} should not have been made: {d.got}.")
    for diff in r.state_diff[:4]:
        lines.append(
            f"State difference in {diff['class']}.{diff['attribute']}: expected {diff['expected']}, got {diff['got']}."
        )
    if r.missing_results:
        lines.append(
            "Results the request needs but the calls did not produce: " + "; ".join(r.missing_results[:3]) + "."
        )
    for error in r.error_results[:3]:
        lines.append(f"A call failed: {error}.")
    if r.expected_calls:
        lines += ["Corrected call sequence for this turn:", r.corrected]
    else:
        lines += ["Correct behaviour for this turn:", r.corrected]
    return "\n".join(lines)


# -- the reflection request (the SFT prompt) --------------------------------------------------


REQUEST_HEAD = (
    "Review the tool-use episode below. Say which turn failed and why, which call was wrong, and "
    "give the corrected call sequence for that turn."
)


def episode_log(task: Task, trajectory: Trajectory, show_ground_truth: bool = False, codec: Codec | None = None) -> str:
    """The trajectory as a readable log: per turn the request, each assistant output and its
    (shortened) results; optionally the ground-truth calls of each turn."""
    lines = []
    for record in trajectory.turns:
        t = record.index
        if t >= len(task.turns):
            break
        lines.append(f"Turn {t + 1}. User: {turn_request(task, t)}")
        lines += _step_lines(record.steps)
        if show_ground_truth:
            lines.append(_truth_line(task, t, codec))
    return "\n".join(lines)


def _step_lines(steps: Sequence[Any]) -> list[str]:
    """Each assistant output and its (shortened) results, one line each."""
    lines = []
    for step in steps:
        lines.append(f"Assistant: {_cut(step.raw if isinstance(step.raw, str) else str(step.raw), MAX_OUTPUT_CHARS)}")
        lines += [f"Result: {_cut(result, MAX_RESULT_CHARS)}" for result in list(step.results) + list(step.errors)]
    return lines


def _truth_line(task: Task, turn: int, codec: Codec | None) -> str:
    assert codec is not None
    calls = task.ground_truth_calls[turn]
    return "Ground-truth calls: " + (
        render_calls(task, calls, codec) if calls else "none (missing function or parameter)"
    )


def reflection_request(
    task: Task, trajectory: Trajectory, show_ground_truth: bool = False, codec: Codec | None = None
) -> str:
    tools = ", ".join(doc["name"] for doc in task.tool_docs(revealed_up_to=len(task.turns)))
    return "\n\n".join(
        [REQUEST_HEAD, f"Available tools: {tools}", episode_log(task, trajectory, show_ground_truth, codec)]
    )


ERROR_TURN_HEAD = (
    "The tool-use episode below failed in its last turn shown. Find the root cause, then generalise "
    "the lesson to similar requests and give their correct call sequences."
)


def error_turn_log(
    task: Task, trajectory: Trajectory, turn: int, show_ground_truth: bool = False, codec: Codec | None = None
) -> str:
    """The user's requests up to ``turn``, then that turn's assistant outputs and results and,
    optionally, its ground-truth calls."""
    lines = [f"Turn {t + 1}. User: {turn_request(task, t)}" for t in range(min(turn, len(task.turns)))]
    lines.append(f"Turn {turn + 1} (failed). User: {turn_request(task, turn)}")
    record = next((r for r in trajectory.turns if r.index == turn), None)
    lines += _step_lines(record.steps if record is not None else [])
    if show_ground_truth:
        lines.append(_truth_line(task, turn, codec))
    return "\n".join(lines)


def error_turn_request(
    task: Task, trajectory: Trajectory, turn: int, show_ground_truth: bool = False, codec: Codec | None = None
) -> str:
    tools = ", ".join(doc["name"] for doc in task.tool_docs(revealed_up_to=len(task.turns)))
    return "\n\n".join(
        [ERROR_TURN_HEAD, f"Available tools: {tools}", error_turn_log(task, trajectory, turn, show_ground_truth, codec)]
    )


def reflection_messages(
    task: Task, trajectory: Trajectory, reflection: Reflection, codec: Codec, show_ground_truth: bool = False
) -> list[dict[str, str]]:
    """One SFT conversation: the reflection request, then the critique as the assistant's
    answer (the judge's text for a judge reflection). An ``error_turn`` reflection is asked
    about its failing turn only."""
    if reflection.kind == "error_turn":
        assert reflection.failed_turn is not None
        request = error_turn_request(task, trajectory, reflection.failed_turn, show_ground_truth, codec)
    else:
        request = reflection_request(task, trajectory, show_ground_truth, codec)
    return [{"role": "user", "content": request}, {"role": "assistant", "content": reflection.critique}]
