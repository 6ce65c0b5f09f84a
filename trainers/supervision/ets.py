"""Erroneous trajectory supervision (ETS): which training tasks failed lately, and their
ground-truth demonstrations as SFT data for the SFT phase between two RL phases.

Selection (docs/paper-methods.md §5.4): read the per-rollout records (:mod:`trainers.records`) of the
last ``window`` RL steps of a phase (steps in ``(last_step − window, last_step]``) and collect
every training task with **at least one rollout scoring 0** in any of them (``rule="any"``, what the paper's code
effectively did). ``rule="all"`` keeps a task only when, in some step, *all* of its policy
rollouts failed (the group test the paper's code also contains, then overrides). Substituted
expert rollouts (OPS) are never counted. The SFT data are the tasks' ground-truth
demonstrations, not the failed trajectories themselves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from trainers.records import RolloutRecord  # ETS's view of a rollout; also read as ets.RolloutRecord

RULES = ("any", "all")


def erroneous_task_ids(
    records: Iterable[RolloutRecord], last_step: int, window: int = 10, rule: str = "any"
) -> list[str]:
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
