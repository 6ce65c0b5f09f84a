"""PRS's data: which trajectories are reflected on, the endpoint judge, and the reflection
records (with their SFT conversations) built from them.

The built-in reflector and the SFT conversation format are :mod:`.reflect`'s; this module adds
the paper's LLM judge (:class:`EndpointJudge`, calls A and B, see :mod:`.reflect`'s docstring)
and :func:`build_reflections`, which the PRS method (:class:`~.schedule.PRS`) runs between two
RL phases.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from toolenv.data import Task
from toolenv.formats import Codec, get_codec
from toolenv.trajectory import Trajectory
from trainers.records import RolloutRecord
from trainers.supervision.reflect import (
    Reflection,
    error_turn_request,
    reflect,
    reflection_messages,
    reflection_request,
)

if TYPE_CHECKING:
    from trainers.supervision.schedule import PRS

REFLECTIONS_FILE = "reflections.jsonl"
#: one rollout of a step file: its record and its raw trajectory dict
Row = tuple[RolloutRecord, dict[str, Any]]


# -- which trajectories ------------------------------------------------------------------------


def select_reflection_rollouts(rows: Sequence[Row], method: "PRS") -> list[Row]:
    """The trajectories PRS reflects on: ``"failed"`` — failed policy rollouts; ``"paper"`` —
    sample 1 of every group whatever its result (the paper's ``_1``). At most ``per_task``
    per task (latest steps first) and ``max_reflections`` in all."""
    if method.selection == "failed":
        pool = [row for row in rows if row[0].source == "policy" and row[0].reward <= 0]
    else:
        pool = [row for row in rows if row[0].source == "policy" and row[0].sample == 1]
    pool.sort(key=lambda row: (-row[0].step, row[0].group, row[0].sample))
    kept: list[Row] = []
    per_task: dict[str, int] = {}
    for row in pool:
        if per_task.get(row[0].task_id, 0) < method.per_task:
            per_task[row[0].task_id] = per_task.get(row[0].task_id, 0) + 1
            kept.append(row)
        if len(kept) >= method.max_reflections:
            break
    return kept


# -- the reflection records ----------------------------------------------------------------------


def build_reflections(
    rows: Sequence[Row],
    tasks: dict[str, Task],
    method: "PRS",
    call_format: str,
    path: Path | None = None,
    workers: int = 8,
) -> list[dict[str, Any]]:
    """Reflection records with their SFT conversation for the selected trajectories: one each
    from the built-in reflector, one or two each from the endpoint judge (call A, and call B on
    a failing turn), the judge's calls made concurrently. With ``path``, records are kept in a
    JSON Lines file (a trajectory's records written together) and reused when the phase is
    resumed."""
    codec = get_codec(call_format)
    done: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    if path is not None and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                done.setdefault((record["step"], record["task_id"], record["sample"]), []).append(record)
    judge = None
    if method.reflector == "judge":
        judge = EndpointJudge(
            method.endpoint,
            method.model,
            codec,
            api_key=os.environ.get(method.api_key_env),
            error_turn=method.error_turn_call,
        )

    def one(row: Row) -> list[dict[str, Any]]:
        record, data = row
        key = (record.step, record.task_id, record.sample)
        if key in done:
            return done[key]
        task = tasks[record.task_id]
        trajectory = Trajectory.from_dict(data)
        reflections = judge(task, trajectory) if judge is not None else [reflect(task, trajectory, codec)]
        out = []
        for reflection in reflections:
            reflection.sample, reflection.step = record.sample, record.step
            messages = reflection_messages(task, trajectory, reflection, codec, method.show_ground_truth)
            out.append(
                {
                    "step": record.step,
                    "task_id": record.task_id,
                    "sample": record.sample,
                    "reflection": reflection.to_dict(),
                    "messages": messages,
                }
            )
        if path is not None:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
        return out

    if judge is not None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [r for records in pool.map(one, rows) for r in records]
    return [r for row in rows for r in one(row)]


# -- the endpoint judge --------------------------------------------------------------------------


JUDGE_SYSTEM = "You are an assistant that analyses the behaviour of tool-using agents."
JUDGE_INSTRUCTIONS = (
    "For every turn give: (1) the user's intent and the correct behaviour; (2) the mistakes made, "
    "if any, their kind and root cause; (3) an improvement plan: the corrected reasoning and the "
    "ideal call sequence written exactly in the agent's call format, with no markdown. On turns "
    "where a function or parameter is missing, the agent should ask for clarification and make no call."
)
ERROR_TURN_INSTRUCTIONS = (
    "Answer in three parts. (1) Core error analysis: the root cause in one or two lines, two to "
    "four pieces of evidence from the log, and one fix. (2) Three to five generalised scenarios "
    "similar to this one, covering where they apply a missing parameter, a wrong tool, a result "
    "that does not match the request, a call that fails, and an ambiguous or multi-intent "
    "request. For each: a short description, the user's request, the typical mistake, the correct "
    "call sequence written exactly in the agent's call format, the reasoning that transfers, how "
    "it differs from this episode, how to check the answer, and one or two acceptance criteria. "
    "(3) One look-alike scenario that needs a different tool, and why. Write prose: no JSON "
    "schemas and no code fences."
)


class EndpointJudge:
    """Reflections written by an LLM behind an OpenAI-compatible endpoint (module docstring:
    call A on the whole trajectory, call B on the failing turn when ``error_turn``). The
    requests show the ground truth and the checker's findings; each answer (``<think>``
    removed) becomes the critique of one reflection. Temperature 0.7 as in the paper."""

    def __init__(
        self,
        base_url: str,
        model: str,
        codec: Codec,
        api_key: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 2048,
        timeout: float = 300.0,
        error_turn: bool = True,
    ) -> None:
        from toolenv.inference import GenerationConfig
        from toolenv.inference.endpoint import OpenAIEndpointModel

        self.codec = codec
        self.error_turn = error_turn
        self.model = OpenAIEndpointModel(
            base_url,
            model,
            GenerationConfig(max_new_tokens=max_tokens, temperature=temperature),
            api_key=api_key,
            timeout=timeout,
        )

    def request(self, task: Task, trajectory: Trajectory, builtin: Reflection) -> list[dict[str, str]]:
        findings = builtin.critique if not builtin.passed else "The checker found no failure."
        user = "\n\n".join(
            [
                reflection_request(task, trajectory, True, self.codec),
                "Checker findings:\n" + findings,
                JUDGE_INSTRUCTIONS,
            ]
        )
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]

    def error_turn_request_messages(
        self, task: Task, trajectory: Trajectory, builtin: Reflection
    ) -> list[dict[str, str]]:
        assert builtin.failed_turn is not None
        user = "\n\n".join(
            [
                error_turn_request(task, trajectory, builtin.failed_turn, True, self.codec),
                "Checker findings:\n" + builtin.critique,
                ERROR_TURN_INSTRUCTIONS,
            ]
        )
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]

    def _ask(self, task: Task, messages: list[dict[str, str]]) -> str:
        from toolenv.inference import ModelError
        from trainers.supervision.hints import strip_think

        text = strip_think(str(self.model.generate([messages])[0]))
        if not text:
            raise ModelError(f"the judge endpoint returned an empty reflection for {task.id}")
        return text

    def __call__(self, task: Task, trajectory: Trajectory) -> list[Reflection]:
        """Call A's reflection, then call B's when a finished turn failed its checks."""
        builtin = reflect(task, trajectory, self.codec)
        judged = Reflection.from_dict(builtin.to_dict())
        judged.critique, judged.source = self._ask(task, self.request(task, trajectory, builtin)), "judge"
        out = [judged]
        if self.error_turn and not builtin.passed and builtin.failure != "force_terminated":
            focused = Reflection.from_dict(builtin.to_dict())
            focused.critique = self._ask(task, self.error_turn_request_messages(task, trajectory, builtin))
            focused.source, focused.kind = "judge", "error_turn"
            out.append(focused)
        return out
