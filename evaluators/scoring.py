"""Scores: re-check trajectories from scratch and aggregate them the way BFCL does.

Category accuracy = correct / entries; the multi-turn overall score is the unweighted mean of
the four categories (a category absent from a run counts 0 in ``overall_bfcl``, as BFCL's
leaderboard does, and is left out of ``overall``). Breakdowns by API (each task counted once
under every API it involves) and by number of turns, failure reasons and the structural-state
mix of assistant messages come with it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from envs._official import release_of
from toolenv.checker import Verdict, check, turns_passed
from toolenv.data import API_SHORT_NAMES, CATEGORIES, Task, get_task
from toolenv.structure import STATES
from toolenv.trajectory import Trajectory

#: official class name → the short name the reports use (one table: toolenv.data's)
API_NAMES: dict[str, str] = {class_name: short for short, class_name in API_SHORT_NAMES.items()}


@dataclass(frozen=True)
class TaskScore:
    task_id: str
    category: str
    primary_api: str
    involved: tuple[str, ...]
    num_turns: int
    verdict: Verdict
    #: the OOD variant the task was played as ("" in distribution) and its seed
    ood: str = ""
    ood_seed: int = 0
    #: per-turn credit: turns passed before the first failing turn (toolenv.checker.turns_passed)
    turns_passed: int = 0
    #: the repeat the episode was played as, in a run of several (None: a one-repeat run)
    repeat: int | None = None

    @property
    def turn_credit(self) -> float:
        """The share of the task's turns passed before the first failing one."""
        return self.turns_passed / self.num_turns if self.num_turns else 0.0

    def to_dict(self) -> dict[str, Any]:
        row = {
            "task_id": self.task_id,
            "category": self.category,
            "primary_api": self.primary_api,
            "involved": list(self.involved),
            "num_turns": self.num_turns,
            "passed": self.verdict.passed,
            "failure": self.verdict.failure,
            "failed_turn": self.verdict.failed_turn,
            "turns_passed": self.turns_passed,
            "turn_credit": self.turn_credit,
        }
        if self.ood:  # only variant rows carry these, so in-distribution rows stay as they were
            row.update(ood=self.ood, ood_seed=self.ood_seed)
        if self.repeat is not None:  # likewise, only rows of a repeated run
            row["repeat"] = self.repeat
        return row

    @property
    def apis(self) -> tuple[str, ...]:
        """Every API the task involves, each once, by its short name. ``involved_classes`` keeps
        the data's order, which often does not put the primary API first, so no position is
        assumed; the primary is included even if the data were ever to omit it."""
        return tuple(dict.fromkeys(API_NAMES.get(cls, cls) for cls in (self.primary_api, *self.involved)))


@dataclass
class Summary:
    categories: dict[str, dict[str, float]] = field(default_factory=dict)
    overall: float = 0.0
    overall_bfcl: float = 0.0
    by_api: dict[str, dict[str, float]] = field(default_factory=dict)
    by_turns: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    structure: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    tasks: int = 0
    #: calls whose positional arguments BFCL's python decoder dropped, and the tasks with any
    #: (the python call format and prompting result files decode as BFCL does)
    positional_dropped: dict[str, int] = field(default_factory=lambda: {"calls": 0, "tasks": 0})
    #: per-turn credit over every task (not BFCL's score; see TaskScore.turn_credit)
    turn_credit: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "overall": self.overall,
            "overall_bfcl": self.overall_bfcl,
            "categories": self.categories,
            "by_api": self.by_api,
            "by_turns": self.by_turns,
            "failures": self.failures,
            "structure": self.structure,
            "assistant_messages": self.messages,
            "positional_dropped": dict(self.positional_dropped),
            "turn_credit": self.turn_credit,
        }


def trajectory_task(trajectory: Trajectory) -> Task:
    """The task a trajectory was played on: the official task of the release it records, or the
    OOD variant whose spec and seed it records (rebuilt through toolenv's variant provider,
    deterministically)."""
    task = get_task(trajectory.task_id, release_of(trajectory.data_version))
    spec = trajectory.meta.get("ood")
    if spec:
        from toolenv.registration import make_variant

        task = make_variant(task, str(spec), int(trajectory.meta.get("ood_seed", 0)))
    return task


def score_trajectory(trajectory: Trajectory, task: Task | None = None) -> TaskScore:
    task = task or trajectory_task(trajectory)
    turns = trajectory.model_turns()
    verdict = check(task, turns)
    return TaskScore(
        task.id,
        task.category,
        task.primary_class,
        task.involved_classes,
        len(task.turns),
        verdict,
        task.ood_spec,
        task.ood_seed if task.ood_spec else 0,
        turns_passed(task, turns, verdict),
        None if "repeat" not in trajectory.meta else repeat_of(trajectory),
    )


def repeat_of(trajectory: Trajectory) -> int:
    """The repeat a trajectory was played as (``meta.repeat``; 0 when it records none, as the
    trajectories of a one-repeat run and of BFCL result files do)."""
    return int(trajectory.meta.get("repeat") or 0)


def rescore(trajectories: Sequence[Trajectory]) -> tuple[list[Trajectory], list[TaskScore]]:
    """The trajectories in report order (category, task index, repeat), each re-checked from
    scratch (its ``verdict`` set to the fresh one), and their scores."""
    order = {category: rank for rank, category in enumerate(CATEGORIES)}
    ordered = sorted(
        trajectories, key=lambda t: (order.get(t.category, 99), int(t.task_id.rsplit("_", 1)[1]), repeat_of(t))
    )
    scores = [score_trajectory(t) for t in ordered]
    for trajectory, score in zip(ordered, scores):
        trajectory.verdict = score.verdict.to_dict()
    return ordered, scores


EpisodeIdentity = tuple[str, int, str, int]


def episode_identity(trajectory: Trajectory) -> EpisodeIdentity:
    """``(variant spec or "", variant seed or 0, task id, repeat)``: what makes two trajectories
    the same episode. The seed is part of it because the same spec under another seed is another
    task (other names, values and ground truth), scored against another variant; within one run
    folder the seed is fixed, so this agrees with the runner's ``episode_key`` there. The repeat
    (:func:`repeat_of`) is part of it because each repeat of a run is its own episode."""
    spec = str(trajectory.meta.get("ood") or "")
    return spec, int(trajectory.meta.get("ood_seed", 0)) if spec else 0, trajectory.task_id, repeat_of(trajectory)


def unique_episodes(trajectories: Iterable[Trajectory]) -> tuple[list[Trajectory], int]:
    """Each episode once: the last trajectory of every :func:`episode_identity` (a re-run
    episode supersedes the earlier one), in the order the episodes were first seen; and how many
    trajectories were dropped."""
    latest: dict[EpisodeIdentity, Trajectory] = {}
    seen = 0
    for trajectory in trajectories:
        seen += 1
        # assigning to an existing key keeps its first-seen position (dicts keep insertion order)
        latest[episode_identity(trajectory)] = trajectory
    return list(latest.values()), seen - len(latest)


def _rate(rows: Sequence[TaskScore]) -> dict[str, float]:
    correct = sum(r.verdict.passed for r in rows)
    return {"accuracy": correct / len(rows) if rows else 0.0, "correct": correct, "total": len(rows)}


def _credit(rows: Sequence[TaskScore]) -> float:
    """Per-turn credit (not BFCL's score): the mean share of turns passed before the first failure."""
    return sum(r.turn_credit for r in rows) / len(rows) if rows else 0.0


def summarize(scores: Sequence[TaskScore], trajectories: Iterable[Trajectory] = ()) -> Summary:
    summary = Summary(tasks=len(scores))
    by_category: dict[str, list[TaskScore]] = defaultdict(list)
    by_api: dict[str, list[TaskScore]] = defaultdict(list)
    by_turns: dict[str, list[TaskScore]] = defaultdict(list)
    for row in scores:
        by_category[row.category].append(row)
        for api in row.apis:  # once under each API the task involves, primary or not
            by_api[api].append(row)
        by_turns[str(row.num_turns)].append(row)
    summary.categories = {
        c: {**_rate(by_category[c]), "turn_credit": _credit(by_category[c])} for c in CATEGORIES if c in by_category
    }
    summary.turn_credit = _credit(scores)
    present = [v["accuracy"] for v in summary.categories.values()]
    summary.overall = sum(present) / len(present) if present else 0.0
    summary.overall_bfcl = sum(summary.categories.get(c, {"accuracy": 0.0})["accuracy"] for c in CATEGORIES) / len(
        CATEGORIES
    )
    summary.by_api = {k: _rate(v) for k, v in sorted(by_api.items())}
    summary.by_turns = {k: _rate(v) for k, v in sorted(by_turns.items(), key=lambda kv: int(kv[0]))}
    summary.failures = dict(Counter(r.verdict.failure or "passed" for r in scores).most_common())
    states: Counter[str] = Counter()
    dropped = {"calls": 0, "tasks": 0}
    for trajectory in trajectories:
        in_task = 0
        for turn in trajectory.turns:
            for step in turn.steps:
                states[step.structure or "unknown"] += 1
                in_task += step.positional_dropped
        dropped["calls"] += in_task
        dropped["tasks"] += bool(in_task)
    summary.positional_dropped = dropped
    summary.messages = sum(states.values())
    summary.structure = {s: states[s] / summary.messages if summary.messages else 0.0 for s in STATES}
    return summary


def ood_comparison(
    in_distribution: Summary,
    base_scores: Sequence[TaskScore],
    variants: dict[str, tuple[Summary, Sequence[TaskScore]]],
    seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """In-distribution and each OOD variant side by side: accuracy overall and per category,
    and the drop (in-distribution minus variant, accuracy in 0–1) for each. ``lost``/``gained``
    count the tasks that pass in distribution but fail as the variant, and the reverse (each
    repeat of a repeated run paired with the same repeat in distribution)."""
    passed = {(row.task_id, row.repeat): row.verdict.passed for row in base_scores}
    rows = []
    for spec, (summary, scores) in variants.items():
        categories = {}
        for category, values in summary.categories.items():
            base = in_distribution.categories.get(category, {}).get("accuracy")
            categories[category] = {
                "accuracy": values["accuracy"],
                "drop": None if base is None else base - values["accuracy"],
            }
        paired = [row for row in scores if (row.task_id, row.repeat) in passed]
        rows.append(
            {
                "spec": spec,
                "tasks": summary.tasks,
                "overall": summary.overall,
                "drop": in_distribution.overall - summary.overall,
                "categories": categories,
                "lost": sum(passed[r.task_id, r.repeat] and not r.verdict.passed for r in paired),
                "gained": sum(r.verdict.passed and not passed[r.task_id, r.repeat] for r in paired),
                "failures": summary.failures,
                "structure": summary.structure,
            }
        )
    comparison: dict[str, Any] = {
        "seeds": list(seeds),
        "in_distribution": {
            "tasks": in_distribution.tasks,
            "overall": in_distribution.overall,
            "categories": {c: {"accuracy": v["accuracy"]} for c, v in in_distribution.categories.items()},
        },
        "variants": rows,
    }
    sensitivity = format_sensitivity(rows)
    if sensitivity:  # only runs with several format configurations: other reports stay as they were
        comparison["format_sensitivity"] = sensitivity
    return comparison


#: the key every BFCL V4 format-sensitivity configuration string sets (``ret_fmt=…&…``)
FORMAT_KEY = "ret_fmt="


def format_split(spec: str) -> tuple[str, str] | None:
    """``(the spec without its format configuration, the configuration)`` for a variant spec
    holding one BFCL V4 format configuration (a ``ret_fmt=…`` token, or ``bfcl_format:ret_fmt=…``);
    ``None`` for any other spec."""
    tokens = spec.split("+")
    configs = [token for token in tokens if FORMAT_KEY in token]
    if len(configs) != 1:
        return None
    rest = "+".join(token for token in tokens if token is not configs[0])
    return rest, configs[0].split(":", 1)[-1]


def spread(accuracies: Sequence[float]) -> dict[str, float]:
    """BFCL's numbers across formats (accuracy in 0–1): ``max_delta``, the largest minus the
    smallest accuracy, and ``std``, their sample standard deviation (BFCL's ``statistics.stdev``);
    both 0 for fewer than two formats."""
    if len(accuracies) < 2:
        return {"max_delta": 0.0, "std": 0.0}
    return {"max_delta": max(accuracies) - min(accuracies), "std": statistics.stdev(accuracies)}


def format_sensitivity(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL V4's format-sensitivity numbers for the variants that differ only in their format
    configuration: for each group of two or more (grouped by the rest of the spec, ``""`` for
    configurations alone), max-Δ and std of the accuracy across the configurations, overall
    and per task category, with the best and worst configuration overall."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for row in rows:
        split = format_split(str(row["spec"]))
        if split is not None:
            groups.setdefault(split[0], []).append((split[1], row))
    result = []
    for rest, members in groups.items():
        if len(members) < 2:
            continue
        overall = [row["overall"] for _, row in members]
        categories = {}
        for category in dict.fromkeys(c for _, row in members for c in row["categories"]):
            values = [row["categories"][category]["accuracy"] for _, row in members if category in row["categories"]]
            categories[category] = {**spread(values), "formats": len(values)}
        result.append(
            {
                "spec": rest,
                "formats": [config for config, _ in members],
                "overall": {
                    **spread(overall),
                    "min": min(overall),
                    "max": max(overall),
                    "best": members[overall.index(max(overall))][0],
                    "worst": members[overall.index(min(overall))][0],
                },
                "categories": categories,
            }
        )
    return result
