"""Repeated runs (``toolenv eval --repeats K``): the spread of the score over the K runs, and
pass^k and pass@k.

For a task played n times (n = K in a complete run) with c passes:

- pass^k (τ-bench's: the task passes *all* of k trials): the unbiased estimator
  C(c, k) / C(n, k), the chance that k of the n trials drawn without replacement all pass;
- pass@k (the task passes *at least one* of k trials): 1 - C(n - c, k) / C(n, k).

Both are averaged over a category's tasks, for k = 1..n; overall is the unweighted mean of the
categories present, as the accuracy's ``overall`` is. pass^1 = pass@1 = the mean accuracy over
the runs; pass^k never rises with k and pass@k never falls. The spread is the sample standard
deviation (ddof=1) of the K runs' accuracies. None of this is BFCL's score, which is the 0/1
entry accuracy of one run: the report's headline is its mean over the K runs.
"""

from __future__ import annotations

from math import comb
from statistics import fmean, stdev
from typing import Any, Callable, Sequence

from evaluators.scoring import TaskScore
from toolenv.data import CATEGORIES
from toolenv.trajectory import Trajectory

STD_NOTE = "sample standard deviation of the per-run accuracies (ddof=1)"
ESTIMATOR_NOTE = (
    "for a task with c passes in n trials, pass^k = C(c,k)/C(n,k) (τ-bench: all k trials pass) and "
    "pass@k = 1 - C(n-c,k)/C(n,k) (at least one of k passes), averaged over a category's tasks; "
    "overall = the mean of the categories"
)


def _check(passes: int, trials: int, k: int) -> None:
    if not 0 <= passes <= trials or not 1 <= k <= trials:
        raise ValueError(f"need 0 <= passes <= trials and 1 <= k <= trials (got c={passes}, n={trials}, k={k})")


def pass_hat_k(passes: int, trials: int, k: int) -> float:
    """τ-bench's pass^k of one task with ``passes`` of ``trials``: C(c, k) / C(n, k)."""
    _check(passes, trials, k)
    return comb(passes, k) / comb(trials, k)


def pass_at_k(passes: int, trials: int, k: int) -> float:
    """pass@k of one task with ``passes`` of ``trials``: 1 - C(n - c, k) / C(n, k)."""
    _check(passes, trials, k)
    return 1 - comb(trials - passes, k) / comb(trials, k)


Estimator = Callable[[int, int, int], float]


def estimate(table: Sequence[tuple[int, int]], estimator: Estimator) -> dict[str, float]:
    """``estimator`` averaged over the tasks of ``table`` (``(passes, trials)`` each), for
    k = 1..the fewest trials of any task; keyed by k as a string (JSON)."""
    if not table:
        return {}
    top = min(trials for _, trials in table)
    return {str(k): fmean(estimator(c, n, k) for c, n in table) for k in range(1, top + 1)}


def _spread(per_run: list[float | None]) -> dict[str, Any]:
    """Mean and sample std of the per-run accuracies (a run with no episode here is None in
    ``per_run``, as in an interrupted run, and left out)."""
    values = [value for value in per_run if value is not None]
    return {
        "mean": fmean(values) if values else 0.0,
        "std": stdev(values) if len(values) > 1 else None,
        "per_run": per_run,
    }


def _mean_of_categories(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key by key, the mean over the categories that define it (``overall``)."""
    keys = set.intersection(*(set(row) for row in rows)) if rows else set()
    return {k: fmean(row[k] for row in rows) for k in sorted(keys, key=int)}


def _positional_calls(trajectories: Sequence[Trajectory]) -> int:
    return sum(step.positional_dropped for t in trajectories for turn in t.turns for step in turn.steps)


def repeat_indices(scores: Sequence[TaskScore]) -> list[int]:
    """The repeats present among ``scores`` (``[0]`` for a one-repeat run)."""
    return sorted({score.repeat or 0 for score in scores})


def _category(scores: Sequence[TaskScore], trajectories: Sequence[Trajectory], runs: Sequence[int]) -> dict[str, Any]:
    tally: dict[str, list[int]] = {}
    for score in scores:
        tally.setdefault(score.task_id, [0, 0])
        tally[score.task_id][0] += score.verdict.passed
        tally[score.task_id][1] += 1
    table = [(c, n) for c, n in tally.values()]
    per_run: list[float | None] = []
    for run in runs:
        rows = [s.verdict.passed for s in scores if (s.repeat or 0) == run]
        per_run.append(sum(rows) / len(rows) if rows else None)
    return {
        "tasks": len(tally),
        **_spread(per_run),
        "pass^k": estimate(table, pass_hat_k),
        "pass@k": estimate(table, pass_at_k),
        "turn_credit": fmean(s.turn_credit for s in scores),
        "positional_dropped": _positional_calls(trajectories),
    }


def _overall(categories: dict[str, dict[str, Any]], runs: Sequence[int]) -> dict[str, Any]:
    rows = list(categories.values())
    per_run: list[float | None] = []
    for position in range(len(runs)):
        present = [row["per_run"][position] for row in rows if row["per_run"][position] is not None]
        per_run.append(fmean(present) if present else None)
    return {
        **_spread(per_run),
        "pass^k": _mean_of_categories([row["pass^k"] for row in rows]),
        "pass@k": _mean_of_categories([row["pass@k"] for row in rows]),
    }


def repeats_section(scores: Sequence[TaskScore], trajectories: Sequence[Trajectory]) -> dict[str, Any] | None:
    """The ``repeats`` section of a report (see the module docstring), or None when ``scores``
    hold one repeat only. ``trajectories[i]`` is the episode of ``scores[i]``."""
    runs = repeat_indices(scores)
    if len(runs) < 2:
        return None
    categories = {}
    for category in CATEGORIES:
        rows = [i for i, score in enumerate(scores) if score.category == category]
        if rows:
            categories[category] = _category([scores[i] for i in rows], [trajectories[i] for i in rows], runs)
    tasks: dict[str, dict[str, Any]] = {}
    for score in scores:
        row = tasks.setdefault(score.task_id, {"task_id": score.task_id, "category": score.category, "passes": 0})
        row["passes"] += score.verdict.passed
        row["trials"] = row.get("trials", 0) + 1
    return {
        "runs": len(runs),
        "repeats": runs,
        "complete": all(row["trials"] == len(runs) for row in tasks.values()),
        "std": STD_NOTE,
        "estimators": ESTIMATOR_NOTE,
        "overall": _overall(categories, runs),
        "categories": categories,
        "tasks": list(tasks.values()),
    }


def variant_repeats(
    variants: dict[str, tuple[Sequence[TaskScore], Sequence[Trajectory]]],
) -> dict[str, dict[str, Any]]:
    """Per OOD variant, the overall spread and estimators over the runs (no task rows)."""
    out = {}
    for label, (scores, trajectories) in variants.items():
        section = repeats_section(scores, trajectories)
        if section is not None:
            out[label] = {"tasks": len(section["tasks"]), "overall": section["overall"]}
    return out
