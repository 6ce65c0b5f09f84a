"""Curriculum tasks: official BFCL tasks cut to their first turns, with a compact tool list.

A small model (135M) earns no reward on the full multi-turn tasks, so training and evaluating
it there measures nothing. A curriculum task keeps the first ``turns`` user turns of an
official task (and their ground truth), offers only the functions those turns' ground truth
calls plus a few seeded distractors of the same API (``max_tools`` in all), and is checked by
the unchanged binary checker on the kept turns (the checker replays ``task.ground_truth``,
which is cut with the turns).

The label lives in the id, before the entry index so that ``Task.index`` (and everything that
orders by it) still works: ``multi_turn_base@curriculum-t1-f6-s0_17``. :func:`toolenv.data.get_task`
resolves such an id in any process by cutting the official task again (deterministic in the
label), so scoring, rescoring and resume find the same task; OOD variants are built on top of
it (their id is the curriculum id, as a variant keeps its base's id).
"""

from __future__ import annotations

import json
import re

from envs import backend_class
from toolenv.data import DataError, Task
from toolenv.seeding import derived_rng

LABEL = "curriculum"
_LABEL_RE = re.compile(r"^curriculum-t(\d+)-f(\d+)-s(-?\d+)$")


def curriculum_label(turns: int, max_tools: int, seed: int) -> str:
    return f"{LABEL}-t{int(turns)}-f{int(max_tools)}-s{int(seed)}"


def curriculum_id(base_id: str, turns: int, max_tools: int, seed: int) -> str:
    """``multi_turn_base_17`` → ``multi_turn_base@curriculum-t1-f6-s0_17``."""
    head, _, number = base_id.rpartition("_")
    return f"{head}@{curriculum_label(turns, max_tools, seed)}_{number}"


def parse_curriculum_id(task_id: str) -> tuple[str, int, int, int] | None:
    """``(base id, turns, max_tools, seed)`` of a curriculum id; ``None`` for any other id."""
    head, _, number = str(task_id).rpartition("_")
    base, at, label = head.partition("@")
    match = _LABEL_RE.match(label) if at else None
    if match is None:
        return None
    return f"{base}_{number}", int(match[1]), int(match[2]), int(match[3])


def is_curriculum(task: Task) -> bool:
    return parse_curriculum_id(task.id) is not None


def cut_task(task: Task, turns: int, max_tools: int, seed: int) -> Task:
    """``task`` cut to its first ``turns`` turns with a compact tool list (see the module).

    Refused (one-line ``DataError``) for a variant, a task with held-out functions (miss_func:
    its reveal turns would have to be cut consistently with the tool list; excluded instead),
    and a cut whose kept turns call nothing (nothing to earn reward on)."""
    if turns < 1 or max_tools < 1:
        raise DataError(f"curriculum needs turns >= 1 and max_tools >= 1 (got {turns}, {max_tools})")
    if task.is_variant or is_curriculum(task):
        raise DataError(f"{task.id}: curriculum tasks are cut from official tasks")
    if task.held_out:
        raise DataError(f"{task.id}: tasks with held-out functions (miss_func) are not cut")
    truth = task.ground_truth[:turns]
    called = list(dict.fromkeys(call.name for turn in task.ground_truth_calls[:turns] for call in turn))
    if not called:
        raise DataError(f"{task.id}: its first {turns} turn(s) call no function")
    docs_by_class = {cls: backend_class(cls, task.release).tool_docs() for cls in task.involved_classes}
    owner = {doc["name"]: cls for cls, docs in docs_by_class.items() for doc in docs}
    unknown = [name for name in called if name not in owner]
    if unknown:
        raise DataError(f"{task.id}: ground truth calls {', '.join(unknown)}, which no involved API defines")
    classes = list(dict.fromkeys(owner[name] for name in called))
    pool = sorted(doc["name"] for cls in classes for doc in docs_by_class[cls] if doc["name"] not in called)
    extra = derived_rng(task.id, turns, max_tools, seed).sample(pool, max(0, min(len(pool), max_tools - len(called))))
    keep = set(called) | set(extra)
    # offer order: the API's own doc order, so the list reads as the official one, shortened
    docs = [doc for cls in task.involved_classes for doc in docs_by_class[cls] if doc["name"] in keep]
    return Task(
        id=curriculum_id(task.id, turns, max_tools, seed),
        category=task.category,
        turns=task.turns[:turns],
        involved_classes=task.involved_classes,
        ground_truth=truth,
        held_out=(),
        data_version=task.data_version,
        initial_config_json=task.initial_config_json,
        excluded_function=task.excluded_function,
        tool_docs_json=json.dumps(docs),
    )


def resolve_curriculum_id(task_id: str, data_version: str | None = None) -> Task | None:
    """The curriculum task an id names (rebuilt from the official task), or ``None`` when the
    id is not a curriculum id."""
    parsed = parse_curriculum_id(task_id)
    if parsed is None:
        return None
    from toolenv.data import get_task

    base_id, turns, max_tools, seed = parsed
    return cut_task(get_task(base_id, data_version), turns, max_tools, seed)
