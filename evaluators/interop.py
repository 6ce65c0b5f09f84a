"""Interoperability with the official tool's result files.

``bfcl generate`` writes, per category, ``BFCL_v4_<category>_result.json`` (JSON Lines) with
``{"id", "result": list[turn][step]}``. A step is the model's raw response: a string for
prompting models (BFCL's python-list call format), or a list of ``{function_name: arguments}``
dicts for function-calling models. ``result`` is a string when inference crashed.

:func:`trajectories_from_bfcl` decodes such records into trajectories that our checker scores
(steps that do not decode, or decode to nothing, are dropped, as BFCL's evaluator does).
:func:`bfcl_records` exports our trajectories in that format, with every step rendered as a
python-list string that BFCL's prompting decoder reads back.

The official evaluator decodes with each model handler's own ``decode_execute``; this module
decodes with the generic prompting decoder (positional arguments kept, nothing evaluated), so a
handler with a custom output format needs its outputs converted first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from toolenv.calls import Call
from toolenv.data import Task, get_task
from toolenv.executor import Session
from toolenv.formats import get_codec
from toolenv.formats.base import arguments_object
from toolenv.trajectory import Step, Trajectory, TurnRecord


class InteropError(ValueError):
    """A result file or record that is not in the official format (one line)."""


def decode_step(raw: Any) -> list[Call]:
    """The calls of one raw BFCL step; [] when it does not decode."""
    if isinstance(raw, str):
        return list(get_codec("python").parse(raw).calls)
    if isinstance(raw, list):
        calls = []
        for item in raw:
            if not (isinstance(item, dict) and len(item) == 1):
                return []
            (name, arguments), = item.items()
            try:
                calls.append(Call(str(name), (), arguments_object(arguments)))
            except (ValueError, TypeError):
                return []
        return calls
    return []


def trajectory_from_bfcl(record: dict[str, Any], task: Task | None = None) -> Trajectory:
    """One official result record as a trajectory (``inference_error`` when ``result`` is no list)."""
    if not isinstance(record, dict) or "id" not in record or "result" not in record:
        raise InteropError("a BFCL result record needs 'id' and 'result'")
    task = task or get_task(record["id"])
    trajectory = Trajectory(task.id, task.category, task.data_version, "bfcl", meta={"source": "bfcl"})
    result = record["result"]
    if not isinstance(result, list):
        trajectory.meta["inference_error"] = str(result)[:500]
        return trajectory
    for index, turn in enumerate(result):
        steps = []
        for raw in turn if isinstance(turn, list) else [turn]:
            calls = decode_step(raw)
            steps.append(Step(raw, "calls" if calls else "text", calls, [], [], ""))
        trajectory.turns.append(TurnRecord(index, [], steps))
    return trajectory


def read_bfcl_results(paths: Iterable[Path]) -> Iterator[Trajectory]:
    """Trajectories from official result files (a file, or a folder of ``*_result.json``)."""
    for path in paths:
        files = sorted(path.glob("**/*_result.json")) if path.is_dir() else [path]
        if not files:
            raise InteropError(f"{path}: no BFCL result files (*_result.json) found")
        for file in files:
            with open(file, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        raise InteropError(f"{file}:{number}: not valid JSON") from None
                    if "multi_turn" not in str(record.get("id", "")):
                        continue
                    try:
                        yield trajectory_from_bfcl(record)
                    except InteropError as exc:
                        raise InteropError(f"{file}:{number}: {exc}") from None
                    except Exception as exc:
                        raise InteropError(f"{file}:{number}: unusable record ({exc})") from None


def bfcl_records(trajectories: Iterable[Trajectory]) -> dict[str, list[dict[str, Any]]]:
    """Our trajectories as official result records, grouped by BFCL category name."""
    codec = get_codec("python")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for trajectory in trajectories:
        task = get_task(trajectory.task_id)
        binder = Session(task.involved_classes, {}, False)
        turns = []
        for turn in trajectory.turns:
            steps = []
            for step in turn.steps:
                if step.calls:
                    steps.append(codec.render_calls([binder.canonical(call) for call in step.calls]))
                else:
                    steps.append(step.raw if isinstance(step.raw, str) else json.dumps(step.raw))
            turns.append(steps)
        grouped.setdefault(task.bfcl_category, []).append({"id": task.id, "result": turns})
    return grouped


def write_bfcl_results(trajectories: Iterable[Trajectory], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for category, records in bfcl_records(trajectories).items():
        path = out_dir / f"BFCL_v4_{category}_result.json"
        with open(path, "w", encoding="utf-8") as handle:
            for record in sorted(records, key=lambda r: int(r["id"].rsplit("_", 1)[1])):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        written.append(path)
    return written
