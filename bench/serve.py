"""The cost of serving: ``toolenv serve`` against in-process ``BFCLEnv.step``, in one run.

Plays the same oracle episodes (the expert's ground-truth actions) three ways and reports
steps/s (resets included in the wall time) and the median time of one step:

- in-process: ``BFCLEnv.reset`` / ``BFCLEnv.step`` in this process;
- served, one client at a time, over WebSocket and over HTTP: a ``toolenv serve`` subprocess on
  loopback, driven by :class:`integrations.server.client.ToolenvClient`; the per-step overhead
  is the served median minus the in-process median (JSON, the socket round trip, the server's
  event loop and its per-session thread);
- served, ``--clients`` concurrent WebSocket clients (threads), aggregate steps/s.

Every served result is checked against the in-process one (same rewards), so a fast wrong
server cannot pass. Needs the server extra.

    python bench/serve.py [--episodes 200] [--format hermes] [--clients 8]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from integrations.server.client import ToolenvClient  # noqa: E402
from toolenv.data import data_version, load_tasks  # noqa: E402
from toolenv.env import BFCLEnv  # noqa: E402
from toolenv.expert import expert_actions  # noqa: E402
from toolenv.formats import get_codec  # noqa: E402

Episode = tuple[str, list]  # (task id, the expert's actions)


def episodes(count: int, call_format: str) -> list[Episode]:
    """``count`` oracle episodes spread over the 800 tasks (every category)."""
    tasks = load_tasks()
    chosen = tasks[:: max(1, len(tasks) // count)][:count]
    codec = get_codec(call_format)
    return [(task.id, expert_actions(task, codec)) for task in chosen]


def in_process(plan: list[Episode], call_format: str) -> tuple[float, list[float], list[float]]:
    """``(wall seconds, step times, rewards)`` of the episodes played on one ``BFCLEnv``."""
    env = BFCLEnv(call_format=call_format)
    times, rewards = [], []
    start = time.perf_counter()
    for task_id, actions in plan:
        env.reset(options={"task_id": task_id})
        for action in actions:
            before = time.perf_counter()
            _, reward, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - before)
        rewards.append(reward)
    return time.perf_counter() - start, times, rewards


def served(url: str, transport: str, plan: list[Episode], call_format: str) -> tuple[float, list[float], list[float]]:
    """The same, through one client session of the server."""
    times, rewards = [], []
    with ToolenvClient(url, transport=transport) as client:
        start = time.perf_counter()
        for task_id, actions in plan:
            client.reset(task_id=task_id, call_format=call_format)
            for action in actions:
                before = time.perf_counter()
                observation = client.step(action)
                times.append(time.perf_counter() - before)
            rewards.append(observation.reward)
        return time.perf_counter() - start, times, rewards


def concurrent(url: str, plan: list[Episode], call_format: str, clients: int) -> tuple[float, int, list[float]]:
    """``(wall seconds, steps, rewards in plan order)`` with ``clients`` WebSocket clients sharing the plan."""
    rewards: list[float] = [0.0] * len(plan)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            with ToolenvClient(url, transport="ws") as client:
                for index in range(offset, len(plan), clients):
                    task_id, actions = plan[index]
                    client.reset(task_id=task_id, call_format=call_format)
                    for action in actions:
                        observation = client.step(action)
                    rewards[index] = observation.reward
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, sum(len(actions) for _, actions in plan), rewards


def start_server(clients: int) -> tuple[subprocess.Popen, str]:
    """A ``toolenv serve`` subprocess on a free loopback port, once it answers ``/health``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "toolenv.cli", "serve", "--port", str(port), "--max-sessions", str(clients + 2)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"toolenv serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("toolenv serve did not start within 60 s")


def line(label: str, wall: float, times: list[float], base: float | None = None) -> str:
    median = statistics.median(times)
    text = f"  {label:<28} {len(times) / wall:8.0f} steps/s   median {median * 1e6:8.1f} µs/step"
    if base is not None:
        text += f"   overhead {(median - base) * 1e6:+8.1f} µs/step"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--format", default="hermes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent WebSocket clients (0: skip)")
    args = parser.parse_args()
    plan = episodes(args.episodes, args.format)
    steps = sum(len(actions) for _, actions in plan)
    in_process(plan, args.format)  # warm the task, checker and codec caches
    wall, times, expected = in_process(plan, args.format)
    base = statistics.median(times)
    print(f"{len(plan)} oracle episodes, {steps} steps ({args.format}), {data_version()}")
    print(line("in-process BFCLEnv.step", wall, times))
    process, url = start_server(args.clients)
    try:
        served(url, "ws", plan[:20], args.format)  # warm the server's caches the same way
        for transport in ("ws", "http"):
            served_wall, served_times, rewards = served(url, transport, plan, args.format)
            assert rewards == expected, f"served {transport} rewards differ from in-process ones"
            print(line(f"served {transport}, 1 client", served_wall, served_times, base))
            print(
                f"  {'':<28} in-process / served: {(len(times) / wall) / (len(served_times) / served_wall):.1f}x "
                f"steps/s, {statistics.median(served_times) / base:.1f}x median step time"
            )
        if args.clients:
            concurrent_wall, concurrent_steps, rewards = concurrent(url, plan, args.format, args.clients)
            assert rewards == expected, "concurrent served rewards differ from in-process ones"
            print(f"  {f'served ws, {args.clients} clients':<28} {concurrent_steps / concurrent_wall:8.0f} steps/s")
    finally:
        process.terminate()
        process.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
