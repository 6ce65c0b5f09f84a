"""A curriculum a small (135M) model can earn reward on: single-API tasks cut to their first
user turns with a compact tool list, checked by BFCL's binary checker on the kept turns.

The cut itself is :func:`toolenv.curriculum.cut_task` (a data operation, so that
:func:`toolenv.data.get_task` can rebuild a curriculum task from its id in any process); this
module chooses which tasks to cut and how, for the study (``[study.curriculum]``).

miss_func tasks are excluded (their held-out functions are revealed at later turns, which a
cut tool list would have to track); miss_param tasks may be asked for: a cut whose kept turns
call nothing (the turn where the model should ask for the missing parameter) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from toolenv.curriculum import cut_task
from toolenv.data import CATEGORIES, Task

#: categories a curriculum may draw from (miss_func excluded, see the module docstring)
CURRICULUM_CATEGORIES = tuple(c for c in CATEGORIES if c != "miss_func")


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

    def __post_init__(self) -> None:
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
        return (
            f"curriculum: first {self.turns} turn(s), <= {self.max_tools} tools, "
            f"<= {self.apis} API(s), categories {', '.join(self.categories)}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Curriculum":
        unknown = sorted(set(data) - {"turns", "max_tools", "apis", "categories", "seed"})
        if unknown:
            raise ValueError(
                f"unknown curriculum key(s) {', '.join(unknown)}; valid: turns, max_tools, apis, categories, seed"
            )
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
