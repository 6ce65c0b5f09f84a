"""Run a chat model through BFCL multi-turn episodes; resumable, with progress.

A run lives in one folder:

- ``run.json``: the configuration (model, call format, categories, split, limit, decoding,
  seed, data version) and the command line;
- ``trajectories.jsonl``: one trajectory per finished episode, appended and flushed as each
  episode ends. An interrupted run started again with the same folder skips the finished
  episodes (a half-written last line is dropped) and continues, so nothing is lost or doubled;
- ``report.json``, ``report.md``, ``report.html``: written when every episode is done.

Episodes run in lockstep batches: one ``generate`` call per round for every unfinished episode.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from toolenv.data import CATEGORIES, Task, data_version, normalize_category, select_tasks
from toolenv.env import BFCLEnv
from toolenv.models.base import ChatModel
from toolenv.trajectory import Trajectory, append_jsonl, read_jsonl

TRAJECTORIES = "trajectories.jsonl"
RUN_FILE = "run.json"


class RunError(RuntimeError):
    """A one-line problem with a run folder or its configuration."""


@dataclass(frozen=True)
class RunConfig:
    model: str
    call_format: str = "hermes"
    categories: tuple[str, ...] = CATEGORIES
    split: str = "all"
    limit: int | None = None
    max_steps_per_turn: int = 20
    batch_size: int = 8
    seed: int = 0
    generation: dict[str, Any] = field(default_factory=dict)
    data_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories)
        return data


def pick_tasks(config: RunConfig) -> list[Task]:
    """The run's tasks. With ``limit`` N: N tasks, taken round-robin over the categories from
    a seeded shuffle of entry indices (so a small run covers every category and API block)."""
    categories = [normalize_category(c) for c in config.categories]
    tasks = select_tasks(categories, config.split)
    if config.limit is None:
        return tasks
    by_index = {(t.category, t.index): t for t in tasks}
    indices = sorted({t.index for t in tasks})
    random.Random(config.seed).shuffle(indices)
    picked = []
    for index in indices:
        for category in categories:
            if (category, index) in by_index and len(picked) < config.limit:
                picked.append(by_index[(category, index)])
    return picked


def finished_ids(path: Path) -> set[str]:
    """Ids of the trajectories already written; drops a half-written last line first."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    return {trajectory.task_id for trajectory in read_jsonl(path)}


def prepare_run_dir(out_dir: Path, config: RunConfig, command: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        if previous.get("config") != json.loads(json.dumps(config.to_dict())):
            raise RunError(f"{out_dir} holds a run with another configuration; resume it with the same options or use a new --out")
        return
    run_file.write_text(json.dumps({"config": config.to_dict(), "command": command}, indent=2))


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.passed = 0
        self.start = time.perf_counter()
        self.started_at = done

    def update(self, reward: float | None) -> None:
        self.done += 1
        self.passed += int(reward == 1.0)
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        rate = (time.perf_counter() - self.start) / max(self.done - self.started_at, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} episodes, "
                         f"{self.passed} passed this session, {rate:.1f} s/episode")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_episodes(
    model: ChatModel,
    tasks: Sequence[Task],
    config: RunConfig,
    on_done: Callable[[Trajectory], None],
) -> None:
    """Play ``tasks`` in lockstep batches with ``model``; ``on_done`` gets each trajectory."""
    native = model.native_tools and config.call_format == "openai"
    for start in range(0, len(tasks), config.batch_size):
        batch = tasks[start: start + config.batch_size]
        envs = []
        for task in batch:
            env = BFCLEnv(categories=[task.category], task_ids=[task.id], call_format=config.call_format,
                          observation_mode="messages" if native else "text",
                          max_steps_per_turn=config.max_steps_per_turn)
            env.reset(seed=config.seed, options={"task_id": task.id})
            envs.append(env)
        active = list(range(len(envs)))
        while active:
            conversations = [_conversation(envs[i]) for i in active]
            tools = [[tool.openai() for tool in envs[i].tools] for i in active] if native else None
            outputs = model.generate(conversations, tools)
            still = []
            for i, output in zip(active, outputs):
                _, _, terminated, truncated, _ = envs[i].step(output)
                if terminated or truncated:
                    trajectory = envs[i].trajectory
                    assert trajectory is not None
                    trajectory.meta.update(model=model.name)
                    on_done(trajectory)
                else:
                    still.append(i)
            active = still


def _conversation(env: BFCLEnv) -> list[dict[str, Any]]:
    assert env.trajectory is not None
    return [dict(message) for message in env.trajectory.messages]


def run_eval(
    model: ChatModel,
    config: RunConfig,
    out_dir: Path,
    command: str = "",
    progress: bool = True,
) -> list[Trajectory]:
    """Run (or resume) an evaluation into ``out_dir``; return all its trajectories."""
    config = RunConfig(**{**config.to_dict(), "categories": tuple(config.categories), "data_version": data_version()})
    prepare_run_dir(out_dir, config, command)
    path = out_dir / TRAJECTORIES
    done = finished_ids(path)
    tasks = pick_tasks(config)
    todo = [task for task in tasks if task.id not in done]
    bar = Progress(len(tasks), len(tasks) - len(todo), progress)
    run_episodes(model, todo, config, lambda t: (append_jsonl(path, [t]), bar.update(t.reward)))
    wanted = {task.id for task in tasks}
    return [t for t in read_jsonl(path) if t.task_id in wanted]


def score_and_report(out_dir: Path, trajectories: Sequence[Trajectory], meta: dict[str, Any]) -> dict[str, Path]:
    """Re-check every trajectory from scratch, aggregate, and write the three reports."""
    from evaluators.report import report_dict, write_reports
    from evaluators.scoring import score_trajectory, summarize

    order = {category: rank for rank, category in enumerate(CATEGORIES)}
    trajectories = sorted(trajectories, key=lambda t: (order.get(t.category, 99), int(t.task_id.rsplit("_", 1)[1])))
    scores = [score_trajectory(t) for t in trajectories]
    for trajectory, score in zip(trajectories, scores):
        trajectory.verdict = score.verdict.to_dict()
    summary = summarize(scores, trajectories)
    return write_reports(out_dir, report_dict(summary, scores, meta), trajectories)


def run_meta(out_dir: Path) -> dict[str, Any]:
    """What a report records about a run folder: config, model, format, seed, command."""
    run_file = out_dir / RUN_FILE
    if not run_file.exists():
        raise RunError(f"{out_dir} is not a toolenv run folder (no {RUN_FILE})")
    saved = json.loads(run_file.read_text())
    config = saved.get("config", {})
    return {
        "data_version": config.get("data_version") or data_version(),
        "model": {"name": config.get("model")},
        "call_format": config.get("call_format"),
        "seed": config.get("seed"),
        "command": saved.get("command", ""),
        "config": config,
    }
