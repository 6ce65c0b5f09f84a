"""Environment overhead per step, beside the raw backend call, and vector-env throughput.

Per step the environment parses the action (call format), runs the calls through the safe
executor, renders the observation, classifies the message's structure and, when a turn closes,
replays it in the checker. This bench drives the oracle policy over all 800 tasks and reports:

- the median wall time of ``env.step`` for tool steps and for turn-closing steps;
- the median time of the same calls made directly on the backend methods (no parsing,
  no rendering, no checking): the floor any environment must pay;
- episodes/s through ``gym.make_vec`` in sync and async mode (2 workers on this machine);
- optionally (``--decode``) the time of one greedy decode step of SmolLM2-135M on this CPU,
  measured in the same run if transformers and the cached model are available.

    python bench/env_step.py [--format hermes] [--decode]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gymnasium as gym  # noqa: E402

import toolenv  # noqa: E402,F401
from toolenv.data import data_version, get_task, load_tasks  # noqa: E402
from toolenv.env import BFCLEnv  # noqa: E402
from toolenv.executor import Session, stringify  # noqa: E402
from toolenv.expert import expert_turns  # noqa: E402
from toolenv.formats import get_codec  # noqa: E402


def step_times(call_format: str) -> tuple[list[float], list[float], list[float]]:
    env = BFCLEnv(call_format=call_format)
    codec = get_codec(call_format)
    tool_steps, closing_steps, raw_calls = [], [], []
    for task in load_tasks():
        env.reset(options={"task_id": task.id})
        session = Session.for_task(task)
        for turn_actions, calls in zip(expert_turns(task, codec), task.ground_truth_calls):
            for action in turn_actions:
                start = time.perf_counter()
                env.step(action)
                elapsed = time.perf_counter() - start
                (tool_steps if action is not turn_actions[-1] else closing_steps).append(elapsed)
            start = time.perf_counter()
            for call in calls:  # the same calls, straight on the backend methods
                instance = session._dispatch[call.name]
                stringify(getattr(instance, call.name)(*call.args, **call.kwargs))
            if calls:
                raw_calls.append(time.perf_counter() - start)
    return tool_steps, closing_steps, raw_calls


def vector_throughput(mode: str, num_envs: int, episodes: int, call_format: str) -> float:
    kwargs = {"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}
    envs = gym.make_vec(
        "BFCL-MultiTurn-v0", num_envs=num_envs, vectorization_mode=mode, call_format=call_format, **kwargs
    )
    codec = get_codec(call_format)
    _, infos = envs.reset(seed=list(range(num_envs)))
    scripts = [_script(infos["task_id"][i], codec) for i in range(num_envs)]
    pending = [False] * num_envs
    done = 0
    start = time.perf_counter()
    while done < episodes:
        actions = ["" if pending[i] else scripts[i].pop(0) for i in range(num_envs)]
        _, _, terms, truncs, infos = envs.step(actions)
        for i in range(num_envs):
            if pending[i]:
                scripts[i] = _script(infos["task_id"][i], codec)
                pending[i] = False
            elif terms[i] or truncs[i]:
                done += 1
                pending[i] = True
    elapsed = time.perf_counter() - start
    envs.close()
    return done / elapsed


def _script(task_id: str, codec) -> list:
    return [a for turn in expert_turns(get_task(task_id), codec) for a in turn]


def decode_step_seconds() -> float | None:
    """One greedy decode step of SmolLM2-135M (prompt of 500 tokens), or None if unavailable."""
    try:
        import torch

        from toolenv.inference import load_model

        chat_model = load_model()  # the embedded default (needs the train extra)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the bench stands
        print(f"  (no decode measurement: {exc})")
        return None
    model = chat_model.model

    ids = torch.randint(100, 1000, (1, 500))
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(10):
            start = time.perf_counter()
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", default="hermes")
    parser.add_argument("--episodes", type=int, default=400, help="episodes per vector-env measurement")
    parser.add_argument("--decode", action="store_true", help="also time a SmolLM2 decode step")
    args = parser.parse_args()
    step_times(args.format)  # warm caches
    tool_steps, closing_steps, raw_calls = step_times(args.format)
    median_tool = statistics.median(tool_steps)
    median_close = statistics.median(closing_steps)
    median_raw = statistics.median(raw_calls)
    print(f"env.step over 800 oracle episodes ({args.format}), {data_version()}")
    print(
        f"  tool step (parse + execute + render + structure)  median {median_tool * 1e6:8.1f} µs  ({len(tool_steps)} steps)"
    )
    print(
        f"  turn-closing step (+ checker replay of the turn)   median {median_close * 1e6:8.1f} µs  ({len(closing_steps)} steps)"
    )
    print(f"  the same calls straight on the backends            median {median_raw * 1e6:8.1f} µs")
    print(f"  overhead per tool step                             median {(median_tool - median_raw) * 1e6:8.1f} µs")
    for mode in ("sync", "async"):
        rate = vector_throughput(mode, 2, args.episodes, args.format)
        print(f"  make_vec {mode:<5} 2 envs: {rate:8.1f} episodes/s")
    decode = decode_step_seconds() if args.decode else None
    if decode is not None:
        print(
            f"  SmolLM2-135M one decode step (500-token context): {decode * 1000:.1f} ms; "
            f"env overhead = {100 * (median_tool - median_raw) / decode:.3f}% of it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
