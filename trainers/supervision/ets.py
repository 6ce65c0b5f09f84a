"""Erroneous trajectory supervision (ETS): which training tasks failed lately, and their
ground-truth demonstrations as SFT data for the SFT phase between two RL phases.

Selection (methods notes §5.4): read the per-rollout records of the last ``window`` RL steps of
a phase (steps in ``(last_step − window, last_step]``) and collect every training task with
**at least one rollout scoring 0** in any of them (``rule="any"``, what the paper's code
effectively did). ``rule="all"`` keeps a task only when, in some step, *all* of its policy
rollouts failed (the group test the paper's code also contains, then overrides). Substituted
expert rollouts (OPS) are never counted. The SFT data are the tasks' ground-truth
demonstrations, not the failed trajectories themselves.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

RULES = ("any", "all")


@dataclass(frozen=True)
class RolloutRecord:
    """What ETS and PRS need to know about one training rollout."""

    step: int
    task_id: str
    sample: int
    reward: float
    source: str = "policy"
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_rollout(cls, step: int, rollout: Any) -> "RolloutRecord":
        return cls(step, rollout.task_id, rollout.sample, float(rollout.reward), rollout.source, rollout.group)


def erroneous_task_ids(records: Iterable[RolloutRecord], last_step: int, window: int = 10, rule: str = "any") -> list[str]:
    """Training tasks that failed in steps ``(last_step − window, last_step]`` (see the module
    docstring), in order of first failure (step, then group, then sample)."""
    if rule not in RULES:
        raise ValueError(f"unknown ETS selection rule {rule!r}; valid: {', '.join(RULES)}")
    if window < 1:
        raise ValueError(f"ETS window must be at least 1 step, got {window}")
    kept = [r for r in records if last_step - window < r.step <= last_step and r.source == "policy"]
    kept.sort(key=lambda r: (r.step, r.group, r.sample))
    chosen: dict[str, None] = {}
    if rule == "any":
        for r in kept:
            if r.reward <= 0:
                chosen.setdefault(r.task_id, None)
        return list(chosen)
    groups: dict[tuple[int, int, str], list[RolloutRecord]] = defaultdict(list)
    for r in kept:
        groups[(r.step, r.group, r.task_id)].append(r)
    for (_, _, task_id), members in sorted(groups.items(), key=lambda item: item[0][:2]):
        if all(m.reward <= 0 for m in members):
            chosen.setdefault(task_id, None)
    return list(chosen)


class RolloutLog:
    """Per-rollout records of a run, appended as JSON Lines (``RUN/supervision/rollouts.jsonl``);
    a resumed run re-reads them, dropping records of steps at or after the resume step."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, records: Sequence[RolloutRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.to_dict()) + "\n")
            handle.flush()

    def read(self) -> list[RolloutRecord]:
        if not self.path.is_file():
            return []
        records = []
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(RolloutRecord(**json.loads(line)))
                    except (TypeError, ValueError) as exc:
                        raise ValueError(f"{self.path}:{number}: not a rollout record ({exc})") from None
        return records

    def truncate_from(self, step: int) -> None:
        """Forget records of steps ``>= step`` (they will be produced again on resume)."""
        records = [r for r in self.read() if r.step < step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")
