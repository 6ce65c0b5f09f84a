"""Episodes against a concurrent model (an HTTP endpoint): each advances as soon as its reply
arrives, with at most ``concurrency`` requests in flight; and the progress bar of a run.

The model is asked from ``concurrency`` worker threads, one conversation a request. Everything
else happens on the calling thread, in arrival order: starting an episode (``env.reset``),
stepping it with its reply, finishing it (``on_done``, which appends it to the run file). An
episode's trajectory depends only on its own conversation and sampling seed, so the
trajectories are those of a serial run; only the order in which episodes finish (and are
written) differs, which is why the runner keys resume on the episode and sorts what it returns.
Episodes start in the order given, a new one whenever one ends, so that at most ``concurrency``
are open and each has exactly one request in flight or none.

The workers are daemon threads: when a request fails for good (a one-line
:class:`~toolenv.inference.ModelError`) the run ends at once with that error, everything
finished so far already written, and the requests still in flight are abandoned.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from toolenv.data import Task
from toolenv.env import BFCLEnv
from toolenv.inference import ChatModel
from toolenv.trajectory import Trajectory

#: requests in flight when ``--concurrency`` is not given (endpoint models only)
DEFAULT_CONCURRENCY = 8
#: cumulative request counters of the endpoint sessions of a run folder (``report.json`` meta)
ENDPOINT_FILE = "endpoint.json"


def open_episode(model: ChatModel, task: Task, config: Any) -> tuple[BFCLEnv, bool]:
    """The environment of one episode, reset, and whether the model gets native tools in it
    (only in episodes whose call format is ``openai``; a variant is played as given)."""
    episode_format = task.format_options.get("call_format", config.call_format)
    native = bool(model.native_tools and episode_format == "openai")
    env = BFCLEnv(
        categories=[task.category],
        task_ids=[task.id],
        call_format=config.call_format,
        observation_mode="messages" if native else "text",
        max_steps_per_turn=config.max_steps_per_turn,
        keep_positional=config.keep_positional,
        tasks=[task] if task.is_variant else None,
    )
    env.reset(seed=config.seed, options={"task_id": task.id})
    return env, native


def conversation(env: BFCLEnv) -> list[dict[str, Any]]:
    assert env.trajectory is not None
    return [dict(message) for message in env.trajectory.messages]


def finished(env: BFCLEnv, model: ChatModel, config: Any, repeat: int) -> Trajectory:
    trajectory = env.trajectory
    assert trajectory is not None
    trajectory.meta.update(model=model.name)
    if config.repeats > 1:
        trajectory.meta["repeat"] = repeat
    return trajectory


def run_concurrent(
    model: ChatModel,
    tasks: Sequence[Task],
    config: Any,
    on_done: Callable[[Trajectory], None],
    repeats: Sequence[int],
    concurrency: int = DEFAULT_CONCURRENCY,
    in_flight: Callable[[int], None] | None = None,
) -> None:
    """Play ``tasks`` (``repeats[i]``: the repeat of ``tasks[i]``) with at most ``concurrency``
    requests in flight; ``on_done`` gets each trajectory as it ends, ``in_flight`` the number of
    requests in flight whenever it changes. See the module docstring."""
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1 (got {concurrency!r})")
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    results: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()

    def work() -> None:
        while (job := jobs.get()) is not None:
            index, messages, tools, seed = job
            try:
                reply = model.generate_seeded([messages], None if tools is None else [tools], [seed])[0]
            except BaseException as exc:  # handed to the calling thread, which raises it
                results.put((index, None, exc))
            else:
                results.put((index, reply, None))

    workers = [
        threading.Thread(target=work, name=f"toolenv-request-{n}", daemon=True)
        for n in range(min(concurrency, len(tasks)))
    ]
    for worker in workers:
        worker.start()
    open_envs: dict[int, tuple[BFCLEnv, bool]] = {}
    waiting = 0

    def ask(index: int) -> None:
        nonlocal waiting
        env, native = open_envs[index]
        tools = [tool.openai() for tool in env.tools] if native else None
        jobs.put((index, conversation(env), tools, config.seed + repeats[index]))
        waiting += 1
        if in_flight is not None:
            in_flight(waiting)

    started = 0
    try:
        while started < len(tasks) or open_envs:
            while started < len(tasks) and len(open_envs) < concurrency:
                open_envs[started] = open_episode(model, tasks[started], config)
                ask(started)
                started += 1
            index, reply, error = _next(results)
            waiting -= 1
            if error is not None:
                raise error
            env = open_envs[index][0]
            _, _, terminated, truncated, _ = env.step(reply)
            if terminated or truncated:
                del open_envs[index]
                if in_flight is not None:
                    in_flight(waiting)
                on_done(finished(env, model, config, repeats[index]))
            else:
                ask(index)
    finally:
        for _ in workers:  # each ends after its current request; an abandoned one dies with the process
            jobs.put(None)


def _next(results: "queue.SimpleQueue[Any]") -> Any:
    """The next reply, waiting in short slices so that Ctrl-C is seen at once."""
    while True:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            continue


# -- request counters ------------------------------------------------------------------------


def record_endpoint_stats(out_dir: Path, model: ChatModel) -> None:
    """Add this session's request counters (a model with ``stats()``: an endpoint) to the run
    folder's :data:`ENDPOINT_FILE`: requests, retries and failures add up over the sessions of
    a run (a failed session, then its resume), ``max_in_flight`` is the highest of them."""
    stats = getattr(model, "stats", None)
    if not callable(stats):
        return
    session = stats()
    path = out_dir / ENDPOINT_FILE
    total = read_endpoint_stats(out_dir) or {"sessions": 0, "requests": 0, "retries": 0, "failures": 0}
    total["sessions"] = int(total.get("sessions", 0)) + 1
    for key in ("requests", "retries", "failures"):
        total[key] = int(total.get(key, 0)) + int(session.get(key, 0))
    total["max_in_flight"] = max(int(total.get("max_in_flight", 0)), int(session.get("max_in_flight", 0)))
    rows = {row["url"]: row for row in total.get("endpoints", [])}
    for row in session.get("endpoints", []):
        kept = rows.setdefault(row["url"], {"url": row["url"], "requests": 0, "retries": 0, "failures": 0})
        for key in ("requests", "retries", "failures"):
            kept[key] = int(kept.get(key, 0)) + int(row.get(key, 0))
    total["endpoints"] = list(rows.values())
    path.write_text(json.dumps(total, indent=2))


def read_endpoint_stats(out_dir: Path) -> dict[str, Any] | None:
    """The run folder's request counters (None when it has none, or they are unreadable)."""
    path = out_dir / ENDPOINT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- progress ------------------------------------------------------------------------------


class Progress:
    """The run's progress bar on stderr (tqdm): episodes done of all, episodes/s, episodes
    passed this session, requests in flight (concurrent runs). Disabled by ``enabled=False`` or
    ``TQDM_DISABLE=1`` (``--quiet``); shown only after ``delay`` seconds (so that a run that
    fails at once prints its one error line alone); it closes itself after the last episode."""

    FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} episodes [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

    def __init__(self, total: int, done: int, enabled: bool = True, delay: float = 0.0) -> None:
        from tqdm import tqdm

        self.passed = 0
        self._in_flight: int | None = None
        self.bar = tqdm(
            total=total,
            initial=done,
            disable=not enabled,
            unit="ep",
            bar_format=self.FORMAT,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
            smoothing=0.1,
            leave=True,
            delay=delay,
        )

    def _postfix(self) -> str:
        flight = "" if self._in_flight is None else f", {self._in_flight} in flight"
        return f"{self.passed} passed{flight}"

    def update(self, reward: float | None) -> None:
        self.passed += int(reward == 1.0)
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(1)
        if self.bar.total is not None and self.bar.n >= self.bar.total:
            self.close()

    def in_flight(self, count: int) -> None:
        self._in_flight = count
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(0)  # shows the bar once its delay is over, even before an episode ends

    def close(self, erase: bool = False) -> None:
        """Close the bar (again: nothing), leaving it on screen, or with ``erase`` taking it off
        (before a one-line error, which then stands alone)."""
        if erase:
            self.bar.leave = False
        self.bar.close()
