"""Run a chat model through BFCL multi-turn episodes; resumable, with progress.

A run lives in one folder:

- ``run.json``: the configuration (model, call format, categories, split, limit, decoding,
  seed, repeats when more than one, data version) and the command line;
- ``trajectories.jsonl``: one trajectory per finished episode, appended and flushed as each
  episode ends. With OOD variants (``ood``), every task is played in distribution and as each
  variant; a variant's trajectory records its spec and seed (``meta.ood``, ``meta.ood_seed``) so
  that scoring rebuilds the same variant. With ``repeats`` K > 1 every episode is played K
  times, repeat r sampling with seed ``seed + r`` in every conversation, and each trajectory
  records its repeat (``meta.repeat``; a one-repeat run writes none, as before). An interrupted
  run started again with the same folder skips the finished episodes (a half-written last line
  is dropped) and continues, so nothing is lost or doubled;
- ``endpoint.json`` (endpoint models): request counters, summed over the sessions of the run;
- ``report.json``, ``report.md``, ``report.html``: written when every episode is done.

Local engines play episodes in lockstep batches: one ``generate`` call per round for every
unfinished episode. A concurrent model (an endpoint, ``ChatModel.concurrent``) plays them
concurrently, each advancing as soon as its reply arrives (:mod:`evaluators.concurrent`); the
episodes finish, and are written, in another order, but the trajectories are the same, and
:func:`run_eval` returns them in episode order either way.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from envs._official import release_of
from evaluators.concurrent import (
    DEFAULT_CONCURRENCY,
    Progress,
    conversation,
    finished,
    open_episode,
    read_endpoint_stats,
    record_endpoint_stats,
    run_concurrent,
)
from evaluators.scoring import repeat_of
from toolenv.data import CATEGORIES, Task, data_version, normalize_category
from toolenv.inference import ChatModel, ModelError
from toolenv.selection import SPLITS, select_tasks
from toolenv.trajectory import Trajectory, append_jsonl, read_jsonl

TRAJECTORIES = "trajectories.jsonl"
RUN_FILE = "run.json"


class RunError(ValueError):
    """A one-line problem with a run folder or its configuration (a user error: the command
    line prints it as one line)."""


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
    #: OOD variant specs played besides the in-distribution tasks, and their seed
    ood: tuple[str, ...] = ()
    ood_seed: int = 0
    #: python format: bind positional arguments instead of dropping them as BFCL does
    keep_positional: bool = False
    #: times every episode is played; repeat r samples with seed ``seed + r``
    repeats: int = 1

    def __post_init__(self) -> None:
        """Refuse values that cannot make a run, before anything is written (one line each)."""
        from toolenv.formats import CODECS

        for name, value in (
            ("limit", self.limit),
            ("batch_size", self.batch_size),
            ("max_steps_per_turn", self.max_steps_per_turn),
            ("repeats", self.repeats),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise RunError(f"{name} must be a whole number >= 1 (got {value!r})")
        if self.call_format not in CODECS:
            raise RunError(f"unknown call format {self.call_format!r}; valid: {', '.join(CODECS)}")
        if self.split not in SPLITS:
            raise RunError(f"unknown split {self.split!r}; valid: {', '.join(SPLITS)}")
        for category in self.categories:
            normalize_category(category)  # a one-line DataError naming the valid ones

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories)
        if self.ood:
            data["ood"] = list(self.ood)
        else:  # a run without variants keeps the configuration it always had (so it resumes)
            del data["ood"], data["ood_seed"]
        if not self.keep_positional:  # likewise for the BFCL decoding, the default
            del data["keep_positional"]
        if self.repeats == 1:  # and for a single run of each episode
            del data["repeats"]
        return data


def episode_tasks(config: RunConfig) -> list[Task]:
    """The run's episodes: the selected tasks (``limit`` of them round-robin over the categories,
    see :func:`toolenv.selection.select_tasks`), then each OOD variant of them (spec order)."""
    release = release_of(config.data_version) if config.data_version else None
    tasks = select_tasks(config.categories, config.split, limit=config.limit, seed=config.seed, data_version=release)
    if not config.ood:
        return tasks
    from toolenv.registration import make_variant

    return tasks + [make_variant(task, spec, config.ood_seed) for spec in config.ood for task in tasks]


EpisodeKey = tuple[str, str, int]


def episode_key(item: Task | Trajectory, repeat: int = 0) -> EpisodeKey:
    """``(variant spec or "", task id, repeat)``: what identifies one episode of a run. A
    trajectory carries its repeat (``meta.repeat``, none: 0, as in a one-repeat run); a task is
    given it."""
    if isinstance(item, Trajectory):
        return str(item.meta.get("ood") or ""), item.task_id, repeat_of(item)
    return item.ood_spec, item.id, repeat


def drop_partial_line(path: Path) -> bool:
    """Cut a half-written last line (an interrupted append) off ``path``; True if one was cut.
    Only the run that appends to the file calls this: readers use :func:`read_trajectories`."""
    if not path.exists():
        return False
    raw = path.read_bytes()
    if not raw or raw.endswith(b"\n"):
        return False
    path.write_bytes(raw[: raw.rfind(b"\n") + 1])
    return True


def read_trajectories(path: Path) -> tuple[list[Trajectory], bool]:
    """The complete trajectories of a run file, without changing it, and whether a half-written
    last line (an interrupted run) was left out."""
    raw = path.read_bytes()
    partial = bool(raw) and not raw.endswith(b"\n")
    complete = raw[: raw.rfind(b"\n") + 1] if partial else raw
    records = []
    for number, line in enumerate(complete.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(Trajectory.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise RunError(f"{path}:{number}: not a trajectory record ({exc})") from None
    return records, partial


def finished_keys(path: Path) -> set[EpisodeKey]:
    """Keys (see :func:`episode_key`) of the trajectories already written; drops a half-written
    last line first."""
    if not path.exists():
        return set()
    drop_partial_line(path)
    return {episode_key(trajectory) for trajectory in read_jsonl(path)}


def read_run_file(out_dir: Path) -> dict[str, Any] | None:
    """The saved ``run.json`` of a run folder (None when there is none); a one-line error
    naming the file when it is unreadable."""
    run_file = out_dir / RUN_FILE
    if not run_file.exists():
        return None
    try:
        saved = json.loads(run_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{run_file} is not valid JSON ({exc}); move it away or use a new --out") from None
    if not isinstance(saved, dict):
        raise RunError(f"{run_file} is not a toolenv run file (expected a JSON object)")
    return saved


def same_release(saved: Any) -> Any:
    """A saved run configuration with its ``data_version`` cut to the release: the same release
    read from the installed bfcl-eval or from its pinned wheel is the same data, recorded with a
    different source (``bfcl-eval==2026.3.23 (installed)`` or ``(wheel sha256:…)``), and a run
    started in one environment resumes in the other."""
    if isinstance(saved, dict) and isinstance(saved.get("data_version"), str):
        return {**saved, "data_version": release_of(saved["data_version"])}
    return saved


def check_run_dir(out_dir: Path, config: RunConfig) -> None:
    """Refuse, writing nothing, an ``out_dir`` that cannot hold this run: a file, or a folder
    with a run of another configuration (an unfinished run of the same one is resumed)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"{out_dir} is a file, not a run folder; use a new --out")
    previous = read_run_file(out_dir) if out_dir.is_dir() else None
    saved_version = (previous or {}).get("config", {}).get("data_version")
    if saved_version and config.data_version and release_of(saved_version) != release_of(config.data_version):
        release = release_of(saved_version)
        raise RunError(
            f"{out_dir} holds a run on bfcl-eval {release}; resume it with --data-version {release} or use a new --out"
        )
    if previous is not None and same_release(previous.get("config")) != same_release(
        json.loads(json.dumps(config.to_dict()))
    ):
        raise RunError(
            f"{out_dir} holds a run with another configuration; resume it with the same options or use a new --out"
        )


def prepare_run_dir(out_dir: Path, config: RunConfig, command: str) -> None:
    check_run_dir(out_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / RUN_FILE
    if not run_file.exists():
        run_file.write_text(json.dumps({"config": config.to_dict(), "command": command}, indent=2))


def run_episodes(
    model: ChatModel,
    tasks: Sequence[Task],
    config: RunConfig,
    on_done: Callable[[Trajectory], None],
    repeats: Sequence[int] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    in_flight: Callable[[int], None] | None = None,
) -> None:
    """Play ``tasks`` with ``model``; ``on_done`` gets each trajectory as it ends.

    A concurrent model (``model.concurrent``: an endpoint) plays up to ``concurrency`` episodes
    at once, each advancing as soon as its reply arrives (``in_flight`` hears the requests in
    flight); any other model plays them in lockstep batches of ``config.batch_size``.
    ``repeats[i]`` (default 0) is the repeat ``tasks[i]`` is played as: every conversation of
    the episode samples with seed ``config.seed + repeat`` (:meth:`ChatModel.generate_seeded`),
    and with ``config.repeats > 1`` the trajectory records it (``meta.repeat``). An OOD variant
    task (``task.ood_spec``) is played as given, in its own call format: the model gets native
    tools only in episodes whose format is ``openai``."""
    repeats = list(repeats) or [0] * len(tasks)
    if getattr(model, "concurrent", False):
        run_concurrent(model, tasks, config, on_done, repeats, concurrency, in_flight)
        return
    for start in range(0, len(tasks), config.batch_size):
        batch = tasks[start : start + config.batch_size]
        batch_repeats = repeats[start : start + config.batch_size]
        seeds = [config.seed + repeat for repeat in batch_repeats]
        envs, native = map(list, zip(*(open_episode(model, task, config) for task in batch)))
        active = list(range(len(envs)))
        while active:
            outputs_by_env: dict[int, Any] = {}
            for mode in (False, True):  # one generate call per tool mode present in the round
                group = [i for i in active if native[i] == mode]
                if not group:
                    continue
                conversations = [conversation(envs[i]) for i in group]
                tools = [[tool.openai() for tool in envs[i].tools] for i in group] if mode else None
                replies = model.generate_seeded(conversations, tools, [seeds[i] for i in group])
                outputs_by_env.update(zip(group, replies))
            still = []
            for i in active:
                _, _, terminated, truncated, _ = envs[i].step(outputs_by_env[i])
                if terminated or truncated:
                    on_done(finished(envs[i], model, config, batch_repeats[i]))
                else:
                    still.append(i)
            active = still


def run_eval(
    model: ChatModel | Callable[[], ChatModel],
    config: RunConfig,
    out_dir: Path,
    command: str = "",
    progress: bool = True,
    tasks: Sequence[Task] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[Trajectory]:
    """Run (or resume) an evaluation into ``out_dir``; return all its trajectories, in episode
    order (repeat by repeat, each in task order) whatever the order they finished in.

    ``model`` is a chat model, or a function making one, called only when episodes remain (a
    finished run loads nothing). ``tasks``: play these episodes instead of the configuration's
    selection (e.g. a study's own task list); the configuration still names the run folder.
    Every task is played ``config.repeats`` times, repeat by repeat (all of repeat 0 first).
    ``concurrency``: requests in flight at most, for a concurrent model (an endpoint; it does not
    change the results, so it is not part of the configuration). Everything is checked (the
    configuration, the task selection, the run folder) before the first file is written, so a
    bad option leaves nothing behind. A model failure ends the run with a one-line
    :class:`ModelError` that says what is saved; the same call resumes."""
    config = versioned(config)
    tasks = list(tasks) if tasks is not None else episode_tasks(config)
    prepare_run_dir(out_dir, config, command)
    path = out_dir / TRAJECTORIES
    done = finished_keys(path)
    episodes = [(task, repeat) for repeat in range(config.repeats) for task in tasks]
    todo = [(task, repeat) for task, repeat in episodes if episode_key(task, repeat) not in done]
    if todo:
        chat = model if isinstance(model, ChatModel) else model()
        bar = Progress(len(episodes), len(episodes) - len(todo), progress, delay=1.0)
        saved = [len(episodes) - len(todo)]

        def keep(trajectory: Trajectory) -> None:
            append_jsonl(path, [trajectory])
            saved[0] += 1
            bar.update(trajectory.reward)

        try:
            run_episodes(
                chat,
                [task for task, _ in todo],
                config,
                keep,
                repeats=[repeat for _, repeat in todo],
                concurrency=concurrency,
                in_flight=bar.in_flight,
            )
        except ModelError as exc:
            bar.close(erase=True)
            raise ModelError(
                f"{exc}; {saved[0]} of {len(episodes)} episodes are saved in {out_dir} "
                "(run the same command again to resume)"
            ) from None
        finally:
            bar.close()
            record_endpoint_stats(out_dir, chat)
    order = {episode_key(task, repeat): rank for rank, (task, repeat) in enumerate(episodes)}
    return sorted((t for t in read_jsonl(path) if episode_key(t) in order), key=lambda t: order[episode_key(t)])


def versioned(config: RunConfig) -> RunConfig:
    """``config`` with the data version it runs on recorded (what ``run.json`` holds)."""
    return RunConfig(
        **{
            **config.to_dict(),
            "categories": tuple(config.categories),
            "ood": tuple(config.ood),
            "data_version": data_version(),
        }
    )


def score_and_report(out_dir: Path, trajectories: Sequence[Trajectory], meta: dict[str, Any]) -> dict[str, Path]:
    """Re-check every trajectory from scratch, aggregate, and write the three reports.

    OOD variant trajectories are scored against their variant (rebuilt from the spec and seed
    they record); the report's main summary is the in-distribution one, and an ``ood`` section
    puts it side by side with each variant, with the drop. An episode present more than once
    (a file appended to twice, results concatenated) counts once: the last copy is kept, with a
    warning on stderr and the count in ``report.json`` (``duplicates_dropped``). A run of
    several repeats is scored over all of them (the summary pools the K runs: for a complete run
    each accuracy is the mean over the runs) and gets a ``repeats`` section
    (:mod:`evaluators.repeats`: mean ± std per category, pass^k and pass@k)."""
    from evaluators.repeats import repeats_section, variant_repeats
    from evaluators.report import report_dict, write_reports
    from evaluators.scoring import ood_comparison, rescore, summarize, unique_episodes

    trajectories, dropped = unique_episodes(trajectories)
    if dropped:
        print(f"toolenv: warning: {dropped} duplicate episode(s) dropped (the last of each kept)", file=sys.stderr)
        meta = {**meta, "duplicates_dropped": dropped}
    trajectories, scores = rescore(trajectories)
    groups: dict[str, list[int]] = {}
    for index, trajectory in enumerate(trajectories):
        groups.setdefault(episode_key(trajectory)[0], []).append(index)
    if set(groups) <= {""}:  # no variants: the report is exactly what it always was
        summary = summarize(scores, trajectories)
        report = report_dict(summary, scores, meta)
        if (repeats := repeats_section(scores, trajectories)) is not None:
            report["repeats"] = repeats
        return write_reports(out_dir, report, trajectories)
    rank = {spec: n for n, spec in enumerate(meta.get("ood") or ())}  # the run's spec order, not the file's
    labels = sorted(groups, key=lambda label: rank.get(label, len(rank)))
    picked = {label: ([scores[i] for i in groups[label]], [trajectories[i] for i in groups[label]]) for label in labels}
    base_scores, base_trajectories = picked.pop("", ([], []))
    summary = summarize(base_scores, base_trajectories)
    report = report_dict(summary, base_scores, meta, variant_scores=[s for rows, _ in picked.values() for s in rows])
    seeds = {int(t.meta.get("ood_seed", 0)) for t in trajectories if t.meta.get("ood")}
    report["ood"] = ood_comparison(
        summary, base_scores, {label: (summarize(s, t), s) for label, (s, t) in picked.items()}, sorted(seeds)
    )
    if (repeats := repeats_section(base_scores, base_trajectories)) is not None:
        report["repeats"] = {**repeats, "variants": variant_repeats(picked)}
    return write_reports(
        out_dir, report, base_trajectories, variant_trajectories=[t for _, rows in picked.values() for t in rows]
    )


def run_meta(out_dir: Path) -> dict[str, Any]:
    """What a report records about a run folder: config, model, format, seed, command."""
    saved = read_run_file(out_dir)
    if saved is None:
        raise RunError(f"{out_dir} is not a toolenv run folder (no {RUN_FILE})")
    config = saved.get("config", {})
    return {
        "data_version": config.get("data_version") or data_version(),
        "model": {"name": config.get("model")},
        "call_format": config.get("call_format"),
        "seed": config.get("seed"),
        **({"ood": config["ood"], "ood_seed": config.get("ood_seed", 0)} if config.get("ood") else {}),
        "command": saved.get("command", ""),
        "config": config,
        **({"endpoint": stats} if (stats := read_endpoint_stats(out_dir)) is not None else {}),
    }
