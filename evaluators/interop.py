"""Interoperability with the official tool's result files.

``bfcl generate`` writes, per category, ``BFCL_v4_<category>_result.json`` (JSON Lines) with
``{"id", "result": list[turn][step]}``. A step is the model's raw response: a string for
prompting models (BFCL's python-list call format), or a list of ``{function_name: arguments}``
dicts for function-calling models. ``result`` is a string when inference crashed.

:func:`trajectories_from_bfcl` decodes such records into trajectories that our checker scores
(steps that do not decode, or decode to nothing, are dropped, as BFCL's evaluator does), each
step classified into its structural state (:func:`step_structure`).
:func:`bfcl_records` exports our trajectories in that format, with every step rendered as a
python-list string that BFCL's prompting decoder reads back.

OOD variants are not official entries (the same id, another task), so
:func:`write_bfcl_results` puts the in-distribution trajectories in ``OUT/`` exactly as before
and each variant in ``OUT/ood/<spec>_seed<seed>/`` in the same line format, beside a manifest
(:data:`OOD_MANIFEST`) naming the spec and seed; :func:`read_bfcl_results` reads the manifest
back so that scoring rebuilds the variant. Give the official evaluator the files of ``OUT/``
itself, never those of ``OUT/ood/``. Of a repeated run (``eval --repeats K``) only repeat 0 is
written: a result file holds one result per id.

Steps are decoded as ``bfcl evaluate`` decodes them with the generic handlers
(:mod:`toolenv.formats.bfcl_decode`, rule for rule): the prompting decoder for text (positional
arguments dropped, and counted per step as ``positional_dropped``), the ``{name: arguments}``
converter for function-calling records; a step that fails to decode or decodes to nothing is
skipped. Nothing is evaluated. A handler with a custom output format needs its outputs
converted first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from evaluators.scoring import episode_identity, repeat_of, unique_episodes
from toolenv.calls import Call
from toolenv.data import Task, get_task
from toolenv.executor import keyword_call
from toolenv.formats import get_codec
from toolenv.formats.bfcl_decode import BFCLDecodeError
from toolenv.formats.bfcl_decode import decode_step as decode_bfcl_step
from toolenv.formats.python_list import UNRUNNABLE
from toolenv.structure import classify
from toolenv.trajectory import Step, Trajectory, TurnRecord


class InteropError(ValueError):
    """A result file or record that is not in the official format (one line)."""


#: the file, beside a variant's result files, that names its OOD spec and seed
OOD_MANIFEST = "toolenv_ood.json"
#: the folder of ``write_bfcl_results``'s output that holds one sub-folder per variant
OOD_FOLDER = "ood"


def is_function_calling(result: Any) -> bool:
    """Whether a record's steps come from a function-calling handler: some step is a list or
    dict of ``{name: arguments}`` (a prompting handler's steps are all text)."""
    return isinstance(result, list) and any(
        isinstance(step, (list, dict)) for turn in result if isinstance(turn, list) for step in turn
    )


def decoded_step(raw: Any, function_calling: bool, keep_positional: bool = False) -> tuple[list[Call], list[str], int]:
    """One raw step as ``bfcl evaluate`` decodes it (:mod:`toolenv.formats.bfcl_decode`): the
    calls, the execution strings toolenv cannot run (they come back as errors) and the number
    of calls whose positional arguments BFCL dropped. A step BFCL fails to decode has no calls.
    ``keep_positional``: text is read by the literal decoder that binds positional arguments
    instead (not how BFCL scores; an explicit option)."""
    if keep_positional and isinstance(raw, str):
        return list(get_codec("python", keep_positional=True).parse(raw).calls), [], 0
    try:
        decoded = decode_bfcl_step(raw, function_calling)
    except BFCLDecodeError:
        return [], [], 0
    calls, unrunnable = decoded.calls()
    return calls, unrunnable, decoded.positional_dropped


def decode_step(raw: Any) -> list[Call]:
    """The calls of one raw BFCL step ([] when it does not decode), its kind taken from its shape."""
    return decoded_step(raw, not isinstance(raw, str))[0]


def _steps_of(turn: Any) -> list[Any]:
    """A turn's steps as ``bfcl evaluate`` iterates them (a string turn is its characters)."""
    if isinstance(turn, (list, str, dict)):
        return list(turn)
    return []


def step_structure(raw: Any, calls: Sequence[Call]) -> str:
    """The structural state of one re-imported step (see :mod:`toolenv.structure`).

    A string is what a prompting model wrote: it is classified by the python-list codec, the
    one it was decoded with, exactly as the environment classifies a live message. A list is a
    function-calling handler's decoded tool calls, so it is a tool step by construction: there
    is no surrounding text that could be polluted, hence ``healthy_call`` when it decoded,
    ``text_pollution`` when it did not (structure there, but broken: BFCL's converter fails the
    whole step and drops it) and ``full_collapse`` for an empty list (nothing at all)."""
    if isinstance(raw, list):
        if not raw:
            return "full_collapse"
        return "healthy_call" if calls else "text_pollution"
    codec = get_codec("python")
    text = raw if isinstance(raw, str) else ("" if raw is None else json.dumps(raw))
    return classify(text, codec, codec.parse(text))


def trajectory_from_bfcl(
    record: dict[str, Any],
    task: Task | None = None,
    function_calling: bool | None = None,
    keep_positional: bool = False,
) -> Trajectory:
    """One official result record as a trajectory (``inference_error`` when ``result`` is no
    list), each step decoded as ``bfcl evaluate`` decodes it. ``function_calling``: the kind
    of handler that wrote it (None: told from the steps' shape, :func:`is_function_calling`)."""
    if not isinstance(record, dict) or "id" not in record or "result" not in record:
        raise InteropError("a BFCL result record needs 'id' and 'result'")
    task = task or get_task(record["id"])
    trajectory = Trajectory(task.id, task.category, task.data_version, "bfcl", meta={"source": "bfcl"})
    result = record["result"]
    if not isinstance(result, list):
        trajectory.meta["inference_error"] = str(result)[:500]
        return trajectory
    function_calling = is_function_calling(result) if function_calling is None else function_calling
    for index, turn in enumerate(result):
        steps = []
        for raw in _steps_of(turn):
            calls, unrunnable, dropped = decoded_step(raw, function_calling, keep_positional)
            status = "calls" if calls else ("invalid" if unrunnable else "text")
            errors = [UNRUNNABLE.format(text=text) for text in unrunnable]
            structure = step_structure(raw, calls or unrunnable)
            steps.append(Step(raw, status, calls, [], errors, structure, dropped, unrunnable))
        trajectory.turns.append(TurnRecord(index, [], steps))
    return trajectory


def variant_of(folder: Path) -> tuple[str, int] | None:
    """The ``(spec, seed)`` that the manifest in ``folder`` names (None: no manifest there, the
    folder holds in-distribution results)."""
    manifest = _manifest(folder)
    return None if manifest is None else (manifest["spec"], manifest["seed"])


def _manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / OOD_MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        spec, seed, position = data["spec"], data["seed"], data.get("position", 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InteropError(f"{path}: not a toolenv OOD manifest (needs JSON with 'spec' and 'seed')") from None
    if not isinstance(spec, str) or not spec or not all(type(v) is int for v in (seed, position)):
        raise InteropError(f"{path}: 'spec' must be a non-empty string, 'seed' and 'position' integers")
    return {"spec": spec, "seed": seed, "position": position}


def _file_order(file: Path) -> tuple[int, int, tuple[str, ...]]:
    """In-distribution files first, in path order (as before), then each variant's in the order
    it was exported (the run's spec order), so a re-imported run lists its variants as the run
    itself does."""
    manifest = _manifest(file.parent)
    return (0, 0, file.parts) if manifest is None else (1, manifest["position"], file.parts)


def read_bfcl_results(paths: Iterable[Path], keep_positional: bool = False) -> Iterator[Trajectory]:
    """Trajectories from official result files (a file, or a folder of ``*_result.json``, searched
    recursively). A result file beside an OOD manifest holds that variant's episodes: their
    trajectories record its spec and seed (``meta.ood``, ``meta.ood_seed``), as a live run does.
    A path that yields no multi-turn record is an error (most likely the wrong folder)."""
    for path in paths:
        files = sorted(path.glob("**/*_result.json"), key=_file_order) if path.is_dir() else [path]
        if not files:
            raise InteropError(f"{path}: no BFCL result files (*_result.json) found")
        found = 0
        for file in files:
            for trajectory in _read_result_file(file, keep_positional):
                found += 1
                yield trajectory
        if not found:
            raise InteropError(f"{path}: no multi-turn records (ids multi_turn_*) in {len(files)} result file(s)")


def _read_result_file(file: Path, keep_positional: bool = False) -> Iterator[Trajectory]:
    variant = variant_of(file.parent)
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InteropError(f"{file}:{number}: not valid JSON") from None
            if not isinstance(record, dict):
                raise InteropError(f"{file}:{number}: a BFCL result record must be a JSON object")
            if "multi_turn" not in str(record.get("id", "")):
                continue
            try:
                trajectory = trajectory_from_bfcl(record, keep_positional=keep_positional)
            except InteropError as exc:
                raise InteropError(f"{file}:{number}: {exc}") from None
            except Exception as exc:
                raise InteropError(f"{file}:{number}: unusable record ({exc})") from None
            if variant is not None:
                trajectory.meta.update(ood=variant[0], ood_seed=variant[1])
            yield trajectory


def bfcl_record(trajectory: Trajectory) -> tuple[str, dict[str, Any]]:
    """One trajectory as ``(BFCL category name, result record)``.

    Calls of an in-distribution trajectory are rendered with their arguments bound to parameter
    names (BFCL's checker wants keywords). A variant's calls use the variant's own tool and
    parameter names, which the canonical signatures do not describe (a renamed tool may even
    carry another tool's canonical name), so they are rendered exactly as the model made them:
    scoring replays them against the rebuilt variant."""
    codec = get_codec("python")
    task = get_task(trajectory.task_id)
    variant = bool(trajectory.meta.get("ood"))
    turns = []
    for turn in trajectory.turns:
        steps = []
        for step in turn.steps:
            if step.calls:
                calls = (
                    step.calls
                    if variant
                    else [keyword_call(call, task.involved_classes, task.release) for call in step.calls]
                )
                steps.append(codec.render_calls(calls))
            else:
                steps.append(step.raw if isinstance(step.raw, str) else json.dumps(step.raw))
        turns.append(steps)
    return task.bfcl_category, {"id": task.id, "result": turns}


def bfcl_records(trajectories: Iterable[Trajectory]) -> dict[str, list[dict[str, Any]]]:
    """Our trajectories as official result records, grouped by BFCL category name. One official
    file holds each id once, so a repeated id (e.g. OOD variants of one task, which
    :func:`write_bfcl_results` keeps apart) is an error."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for trajectory in trajectories:
        if trajectory.task_id in seen:
            raise InteropError(
                f"{trajectory.task_id} appears twice; one result file holds each id once "
                "(write_bfcl_results puts each OOD variant in its own folder)"
            )
        seen.add(trajectory.task_id)
        category, record = bfcl_record(trajectory)
        grouped.setdefault(category, []).append(record)
    return grouped


def variant_folder_name(spec: str, seed: int) -> str:
    """A file-system-safe folder name for a variant (``rename_tools+shuffle_schema`` seed 3 →
    ``rename_tools+shuffle_schema_seed3``); the manifest inside keeps the exact spec."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", spec) + f"_seed{seed}"


def split_variants(trajectories: Iterable[Trajectory]) -> dict[tuple[str, int], list[Trajectory]]:
    """Trajectories by ``(variant spec, seed)`` (``("", 0)``: in distribution), first-seen order."""
    groups: dict[tuple[str, int], list[Trajectory]] = {}
    for trajectory in trajectories:
        spec, seed, _, _ = episode_identity(trajectory)
        groups.setdefault((spec, seed), []).append(trajectory)
    return groups


def _write_records(records_by_category: dict[str, list[dict[str, Any]]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for category, records in records_by_category.items():
        path = folder / f"BFCL_v4_{category}_result.json"
        with open(path, "w", encoding="utf-8") as handle:
            for record in sorted(records, key=lambda r: int(r["id"].rsplit("_", 1)[1])):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def write_bfcl_results(trajectories: Iterable[Trajectory], out_dir: Path, source: str | Path = "the run") -> list[Path]:
    """Write result files (see module docstring) and return their paths, manifests included.

    A repeated episode is written once, its last trajectory (as scoring counts it). Of a run with
    ``--repeats`` K > 1 only repeat 0 is written (a BFCL file holds one result per id; the
    command line says so). ``source`` names where the trajectories came from, for the error
    when there are none."""
    episodes, _ = unique_episodes(trajectories)
    episodes = [trajectory for trajectory in episodes if repeat_of(trajectory) == 0]
    if not episodes:
        raise InteropError(f"nothing to export: {source} holds no trajectories")
    written: list[Path] = []
    folders: dict[str, tuple[str, int]] = {}
    for position, ((spec, seed), group) in enumerate(split_variants(episodes).items()):
        if not spec:
            written += _write_records(bfcl_records(group), out_dir)
            continue
        name = variant_folder_name(spec, seed)
        if folders.setdefault(name, (spec, seed)) != (spec, seed):
            raise InteropError(f"OOD variants {folders[name][0]!r} and {spec!r} map to one folder name {name!r}")
        folder = out_dir / OOD_FOLDER / name
        written += _write_records(bfcl_records(group), folder)
        manifest = folder / OOD_MANIFEST
        manifest.write_text(
            json.dumps(
                {
                    "spec": spec,
                    "seed": seed,
                    "position": position,
                    "note": "toolenv OOD variant episodes: "
                    "not official BFCL entries; score them with `toolenv score --bfcl-results`",
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        written.append(manifest)
    return written
