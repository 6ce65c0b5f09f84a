"""Writing variant test/training sets: JSON Lines, a Hugging Face dataset, Parquet, a manifest.

``generate(out_dir, specs, seed, …)`` writes into ``out_dir``:

- ``tasks.jsonl``: one :meth:`toolenv.data.Task.to_dict` record per line, every spec's variants
  in spec order then task order (loadable with :func:`toolenv.data.load_task_file`, or
  ``gym.make(..., task_file=...)``);
- ``dataset/`` (``datasets.Dataset.save_to_disk``) and ``tasks.parquet``: the same tasks as a
  table (see :func:`dataset_row`; :func:`row_task` reads a row back);
- ``manifest.json``: specs, seed, data version, selection, counts and the SHA-256 of
  ``tasks.jsonl``.

``tasks.jsonl`` and ``manifest.json`` are byte-identical for the same specs, seed and selection.
``datasets`` (and its ``pyarrow``) are imported only when the table outputs are asked for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from ood_variants.registry import make_variant, normalize_spec
from toolenv import __version__
from toolenv.data import Message, Task, load_task_file

JSONL = "tasks.jsonl"
PARQUET = "tasks.parquet"
DATASET_DIR = "dataset"
MANIFEST = "manifest.json"


def variants(tasks: Sequence[Task], specs: Sequence[str], seed: int) -> Iterator[Task]:
    """Every task as every spec's variant (spec order, then task order)."""
    for spec in specs:
        for task in tasks:
            yield make_variant(task, spec, seed)


def record_line(task: Task) -> str:
    return task.to_json()


def dataset_row(task: Task) -> dict[str, Any]:
    """One table row: the record's fields, fixed-type columns for filtering and training, JSON
    text for the variable-shaped parts (scenarios and schemas differ per API, which Arrow cannot
    type as one struct). :func:`row_task` turns a row back into the task."""
    return {
        "id": task.id,
        "category": task.category,
        "ood_spec": task.ood_spec,
        "ood_seed": task.ood_seed,
        "data_version": task.data_version,
        "involved_classes": list(task.involved_classes),
        "turns": [[m.to_dict() for m in turn] for turn in task.turns],
        "ground_truth": [list(turn) for turn in task.ground_truth],
        "held_out": json.dumps({str(index): list(names) for index, names in task.held_out}),
        "excluded_function": list(task.excluded_function),
        "initial_config": task.initial_config_json,
        # every doc the task can offer (the official ones when the variant keeps them)
        "tool_docs": task.tool_docs_json or json.dumps(task.tool_docs(revealed_up_to=len(task.turns))),
        "own_tool_docs": bool(task.tool_docs_json),
        "name_map": task.name_map_json or "{}",
        "format": task.format_json or "{}",
        # {original value: variant value} of the perturbed values ("{}": none)
        "value_map": task.value_map_json or "{}",
    }


def row_task(row: dict[str, Any]) -> Task:
    """The task of a :func:`dataset_row`."""
    return Task(
        id=row["id"],
        category=row["category"],
        turns=tuple(tuple(Message(m["role"], m["content"]) for m in turn) for turn in row["turns"]),
        involved_classes=tuple(row["involved_classes"]),
        ground_truth=tuple(tuple(turn) for turn in row["ground_truth"]),
        held_out=tuple((int(k), tuple(v)) for k, v in json.loads(row["held_out"]).items()),
        data_version=row["data_version"],
        initial_config_json=row["initial_config"],
        excluded_function=tuple(row["excluded_function"]),
        tool_docs_json=row["tool_docs"] if row["own_tool_docs"] else "",
        name_map_json="" if row["name_map"] == "{}" else row["name_map"],
        format_json="" if row["format"] == "{}" else row["format"],
        ood_spec=row["ood_spec"],
        ood_seed=int(row["ood_seed"]),
        value_map_json="" if row.get("value_map", "{}") == "{}" else row["value_map"],
    )


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "writing a Hugging Face dataset needs the 'datasets' package "
            "(pip install datasets, or the toolenv 'ood' extra); or pass --jsonl-only"
        ) from None
    return datasets


def generate(
    out_dir: str | Path,
    tasks: Sequence[Task],
    specs: Sequence[str],
    seed: int,
    selection: dict[str, Any] | None = None,
    tables: bool = True,
    progress: Any = None,
) -> dict[str, Any]:
    """Write the variant set (see module docstring); return the manifest."""
    names = [normalize_spec(spec) for spec in specs]  # every spec checked before any work
    if len(set(names)) != len(names):
        raise ValueError(f"a variant spec is given twice: {', '.join(names)}")
    datasets = _require_datasets() if tables else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    with open(out / JSONL, "w", encoding="utf-8", newline="\n") as handle:
        for spec in names:
            for number, task in enumerate(tasks, 1):
                variant = make_variant(task, spec, seed)
                line = record_line(variant)
                data = (line + "\n").encode("utf-8")
                handle.write(line + "\n")
                digest.update(data)
                if tables:
                    rows.append(dataset_row(variant))
                if progress is not None:
                    progress(spec, number, len(tasks))
            counts[spec] = len(tasks)
    manifest = {
        "specs": names,
        "seed": int(seed),
        "data_version": tasks[0].data_version if tasks else "",
        "selection": selection or {},
        "counts": counts,
        "total": sum(counts.values()),
        "files": {"jsonl": JSONL, **({"dataset": DATASET_DIR, "parquet": PARQUET} if tables else {})},
        "jsonl_sha256": digest.hexdigest(),
        "toolenv_version": __version__,  # variants are rebuilt from spec and seed by this version
    }
    if datasets is not None:
        table = datasets.Dataset.from_list(rows)
        table.save_to_disk(str(out / DATASET_DIR))
        table.to_parquet(str(out / PARQUET))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def load_variant_tasks(path: str | Path) -> list[Task]:
    """Tasks from a generated set: its folder, its ``tasks.jsonl``, its ``tasks.parquet`` or its
    ``dataset/`` folder (the last two need ``datasets``)."""
    source = Path(path)
    if source.is_dir() and (source / JSONL).exists():
        source = source / JSONL
    if source.suffix == ".parquet" or (source.is_dir() and (source / "dataset_info.json").exists()):
        datasets = _require_datasets()
        table = (
            datasets.Dataset.from_parquet(str(source))
            if source.suffix == ".parquet"
            else datasets.load_from_disk(str(source))
        )
        return [row_task(row) for row in table]
    return load_task_file(source)


def verify(out_dir: str | Path) -> list[str]:
    """Problems with a generated folder: the JSONL's hash or counts disagree with the manifest."""
    out = Path(out_dir)
    manifest = json.loads((out / MANIFEST).read_text())
    problems = []
    data = (out / JSONL).read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["jsonl_sha256"]:
        problems.append("tasks.jsonl does not match the manifest's sha256")
    if data.count(b"\n") != manifest["total"]:
        problems.append("tasks.jsonl does not hold the manifest's number of tasks")
    return problems


def spec_slug(spec: str) -> str:
    """A file-system friendly name of a spec (``rename_tools:opaque+xml_format`` → ``rename_tools-opaque__xml_format``)."""
    return normalize_spec(spec).replace("+", "__").replace(":", "-")
