"""TRL datasets of BFCL tasks, and how a TRL row (or prompt) names its task.

A row is ``{"task_id": str, "prompt": [messages], "environment": str}``:

- ``prompt`` is the task's first user turn (its user messages), each message carrying the
  task id under ``"task_id"`` too. TRL hands a ``rollout_func`` the prompts only, not the
  rows, so the id has to travel inside the prompt; chat templates ignore the extra key. The
  ``rollout_func`` renders the episode's real prompt (system prompt with the tools, first
  turn) through ``BFCLEnv``: this column is what TRL logs, and how a prompt finds its task.
- ``environment`` repeats the task id: with a dict ``environment_factory`` TRL routes each
  row to ``environment_factory[row["environment"]]`` (one class per task, see
  :mod:`integrations.trl.environment`).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from envs._official import DataError
from toolenv.data import Task, get_task
from toolenv.selection import select_tasks

#: the key every prompt message carries (and the dataset column)
TASK_ID_KEY = "task_id"


def task_rows(tasks: Iterable[Task]) -> list[dict[str, Any]]:
    """One TRL row per task (see the module docstring)."""
    rows = []
    for task in tasks:
        prompt = [{**message.to_dict(), TASK_ID_KEY: task.id} for message in task.turns[0]]
        rows.append({TASK_ID_KEY: task.id, "prompt": prompt, "environment": task.id})
    return rows


def bfcl_dataset(
    categories: str | Sequence[str] | None = None,
    split: str = "all",
    task_ids: Sequence[str] | None = None,
    apis: Sequence[str] | None = None,
    limit: int | None = None,
    data_version: str | None = None,
) -> Any:
    """A ``datasets.Dataset`` of BFCL tasks for TRL's GRPOTrainer, selected as ``BFCLEnv``
    selects them (categories, the paper's ``train``/``test`` split, ids, APIs; ``limit`` takes
    a round-robin sample over the categories). Columns: ``task_id``, ``prompt``,
    ``environment`` (see the module docstring). A bad filter is a one-line ``DataError``."""
    from datasets import Dataset

    tasks = select_tasks(categories, split, apis, task_ids, limit=limit, data_version=data_version)
    return Dataset.from_list(task_rows(tasks))


def task_id_of(prompt: Any) -> str:
    """The task id a TRL prompt carries: the ``"task_id"`` of its first message that has one
    (:func:`bfcl_dataset`'s prompts), or the prompt itself when it is a plain string (a
    dataset whose prompts are task ids). A one-line ``ValueError`` otherwise."""
    if isinstance(prompt, str):
        return prompt.strip()
    if isinstance(prompt, (list, tuple)):
        for message in prompt:
            if isinstance(message, dict) and message.get(TASK_ID_KEY):
                return str(message[TASK_ID_KEY])
    raise ValueError(
        "cannot tell which BFCL task a prompt is: build the dataset with integrations.trl.bfcl_dataset "
        "(each prompt message carries 'task_id'), or make each prompt a task id string"
    )


def resolve_tasks(
    task_ids: Sequence[str], data_version: str | None = None, where: str = "in the TRL dataset"
) -> list[Task]:
    """The tasks of ``task_ids``, checked before any episode starts; an unknown id is a
    one-line ``ValueError`` naming it (and ``where`` it was found)."""
    tasks = []
    for task_id in task_ids:
        try:
            tasks.append(get_task(task_id, data_version))
        except DataError as exc:
            raise ValueError(f"unknown BFCL task id {where}: {exc}") from None
    return tasks
