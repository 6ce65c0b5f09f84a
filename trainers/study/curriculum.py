"""A curriculum a small (135M) model can earn reward on: single-API tasks cut to their first
user turns with a compact tool list, checked by BFCL's binary checker on the kept turns.

The cut itself is :func:`toolenv.curriculum.cut_task` (a data operation, so that
:func:`toolenv.data.get_task` can rebuild a curriculum task from its id in any process); this
module chooses which tasks to cut and how, for the study (``[study.curriculum]``).

miss_func tasks are excluded (their held-out functions are revealed at later turns, which a
cut tool list would have to track); miss_param tasks may be asked for: a cut whose kept turns
call nothing (the turn where the model should ask for the missing parameter) is dropped.

``train_part`` splits the curriculum's training tasks in two (:func:`train_part_tasks`): a
``warm`` part for the supervised warm start and an ``rl`` part for the RL that starts from it.
Then an interleaved method's SFT phases (ETS) train on demonstrations the warm-started model
has not been fitted to, as in the paper, where the RL's SFT data were new to its base model.
Tasks asking the same first question (a base task and its miss_param twin) stay in one part.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

from toolenv.curriculum import cut_task
from toolenv.data import CATEGORIES, Task

#: categories a curriculum may draw from (miss_func excluded, see the module docstring)
CURRICULUM_CATEGORIES = tuple(c for c in CATEGORIES if c != "miss_func")

#: the parts of the training tasks a run may train on (see :func:`train_part_tasks`)
TRAIN_PARTS = ("all", "warm", "rl")


@dataclass
class Curriculum:
    """How tasks are cut: the first ``turns`` user turns, at most ``max_tools`` offered
    functions, tasks with at most ``apis`` involved classes, of these ``categories``."""

    turns: int = 1
    max_tools: int = 6
    apis: int = 1
    #: base alone gives 30 held-out single-API tasks; miss_param's first turns add 18 (48 in all)
    categories: list[str] = field(default_factory=lambda: ["base", "miss_param"])
    #: the distractor tools' seed: fixed apart from the run's seed, so that every seed of a
    #: study trains and is evaluated on the same cut tasks
    seed: int = 0
    #: which training tasks a run trains on: all of them, or the ``warm`` or ``rl`` part of a
    #: seeded split (:func:`train_part_tasks`); evaluation tasks are never split
    train_part: str = "all"
    #: the share of first questions in the ``warm`` part
    warm_share: float = 0.5

    def __post_init__(self) -> None:
        if self.train_part not in TRAIN_PARTS:
            raise ValueError(f"curriculum train_part must be one of {', '.join(TRAIN_PARTS)} (got {self.train_part!r})")
        if (
            isinstance(self.warm_share, bool)
            or not isinstance(self.warm_share, (int, float))
            or not 0 < self.warm_share < 1
        ):
            raise ValueError(f"curriculum warm_share must be a number between 0 and 1 (got {self.warm_share!r})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"curriculum seed must be an integer >= 0 (got {self.seed!r})")
        for name in ("turns", "max_tools", "apis"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"curriculum {name} must be an integer >= 1 (got {value!r})")
        if isinstance(self.categories, str) or not self.categories:
            raise ValueError(f"curriculum categories must be a non-empty list (got {self.categories!r})")
        bad = [c for c in self.categories if c not in CURRICULUM_CATEGORIES]
        if bad:
            raise ValueError(
                f"curriculum category {bad[0]!r} is not allowed; valid: {', '.join(CURRICULUM_CATEGORIES)}"
            )

    def describe(self) -> str:
        """One line for reports."""
        part = (
            "" if self.train_part == "all" else f", training on the {self.train_part} part ({self.warm_share:g} warm)"
        )
        return (
            f"curriculum: first {self.turns} turn(s), <= {self.max_tools} tools, "
            f"<= {self.apis} API(s), categories {', '.join(self.categories)}{part}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Curriculum":
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown curriculum key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        return cls(**data)


def curriculum_tasks(tasks: Iterable[Task], curriculum: Curriculum, seed: int) -> list[Task]:
    """The curriculum cuts of ``tasks`` (in their order): tasks of the curriculum's categories
    with at most ``apis`` involved classes, cut (see :func:`toolenv.curriculum.cut_task`);
    tasks whose kept turns call nothing are dropped. Deterministic in ``seed``."""
    wanted = set(curriculum.categories)
    out = []
    for task in tasks:
        if task.category not in wanted or task.held_out or len(task.involved_classes) > curriculum.apis:
            continue
        if not any(task.ground_truth[: curriculum.turns]):
            continue
        out.append(cut_task(task, curriculum.turns, curriculum.max_tools, seed))
    return out


def train_part_tasks(tasks: Sequence[Task], curriculum: Curriculum) -> list[Task]:
    """The tasks of ``curriculum.train_part`` (in their order; all of them for ``"all"``).

    The split is by first user turn, so that tasks asking the same first question fall in the
    same part: the distinct first turns, sorted, are shuffled with the curriculum's seed, and
    the first ``round(warm_share * n)`` of them (at least one, at most ``n - 1``) are the
    ``warm`` part. It depends on the tasks and the curriculum only, never on the run's seed."""
    if curriculum.train_part == "all":
        return list(tasks)
    firsts = [_first_turn(task) for task in tasks]
    keys = sorted(set(firsts))
    random.Random(curriculum.seed).shuffle(keys)
    n_warm = min(max(round(curriculum.warm_share * len(keys)), 1), len(keys) - 1)
    warm = set(keys[:n_warm])
    want_warm = curriculum.train_part == "warm"
    return [task for task, first in zip(tasks, firsts) if (first in warm) == want_warm]


def _first_turn(task: Task) -> str:
    return "\n".join(f"{m.role}: {m.content}" for m in task.turns[0])
