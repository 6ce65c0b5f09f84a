"""GRPO step time: toolenv's trainer beside TRL's ``GRPOTrainer`` on the same workload.

TRL's GRPOTrainer is what a user would reach for instead. It trains single-turn completions
(multi-turn needs its ``environment_factory`` tool loop, which cannot host a BFCL episode's
user turns), so the comparison is made on a workload both can run, identically configured:

- the same model (a tiny random Qwen2 built from a config, or ``--model smollm2``), fp32, on
  the same device and thread count;
- the same prompts (chat-templated with SmolLM2's tokenizer), ``--prompts`` per step,
  ``--group`` samples each, ``--completion`` new tokens each (end-of-turn stops allowed), at
  temperature 1;
- the same reward function of the decoded completion, group-normalised advantages, clip 0.2,
  token-mean over the step ("dapo" in TRL), one optimizer step per generation batch, AdamW at
  the same learning rate, gradient clipping 1.0, and a KL term to a frozen reference
  (``--beta``; TRL then loads a reference model too).

A step is generation + reward + log-probs + update, timed end to end; the first ``--warmup``
steps are discarded and the median of the rest is reported. Ours uses the trainer's token
engine (``HFEngine``, prefix-cached on CPU) and :class:`~trainers.grpo.GRPOUpdater`; our
multi-turn step (the BFCL rollout driver) costs more per token than this, because every
assistant message is a separate engine call, but that is work TRL does not do at all, so it is
reported separately (``--multi-turn``) and not in the ratio.

``--update`` times the update alone on a multi-turn BFCL workload (issue #15 item 4): the
rollouts of ``--prompts`` BFCL tasks x ``--group`` samples are played once (the real system
prompt with the tool listing, sampled assistant messages, the environment's observations and
user turns), then the same update (old-policy pass skipped on-policy, reference pass, forward
and backward, one optimizer step) runs on them with the group's shared prompt computed once
(``[grpo] shared_prefix = true``, the default) and with every sample computing it, alternating,
from the same weights; it prints the medians, their ratio, the prompt's share of the update's
tokens, and the largest relative difference of the two updates' weight changes.

    python bench/grpo_step.py [--model tiny|smollm2] [--steps 6] [--multi-turn]
    python bench/grpo_step.py --update --model smollm2 [--prompts 2] [--group 8]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "List the files in my home folder and tell me which one is the largest.",
    "Book a flight from Boston to Denver for next Monday, economy class.",
    "What is the logarithm of 1000 in base 10? Show the function call you would make.",
    "Send a message to Alice saying that the meeting moved to 3 pm.",
    "Check my tire pressure and tell me whether any tire needs air.",
    "Buy 10 shares of the stock with the highest price change today.",
    "Create a ticket titled 'Login fails' with high priority.",
    "Post a tweet saying hello to my followers, tagged #monday.",
]


def reward_of(text: str) -> float:
    """A deterministic reward with variance within groups: a hash bit of the completion."""
    return float(hashlib.blake2b(text.encode(), digest_size=1).digest()[0] & 1)


def model_folder(model_name: str, tokenizer: Any, scratch: Path) -> Path:
    """A folder both trainers load the model from (TRL builds its reference model from the
    policy's path, so an in-memory model is not enough)."""
    if model_name == "tiny":
        from tests.tiny_model import tiny_qwen2

        folder = scratch / "tiny-qwen2"
        tiny_qwen2(seed=0, tokenizer=tokenizer).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder
    from toolenv.inference.smollm2 import ensure_smollm2

    return ensure_smollm2()


def load(folder: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.train(False)
    return model


def ours(args: argparse.Namespace, tokenizer: Any) -> list[float]:
    import copy

    import torch

    from toolenv.inference.hf_engine import HFEngine
    from toolenv.inference.types import SamplingParams
    from trainers.grpo import GRPOConfig, GRPOUpdater
    from trainers.rollout import message_seed
    from trainers.tokenize import prompt_ids
    from trainers.types import Rollout

    model = load(args.folder)
    reference = copy.deepcopy(model).requires_grad_(False) if args.beta > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    updater = GRPOUpdater(
        model,
        optimizer,
        None,
        GRPOConfig(kl_coef=args.beta, mini_batches=1, max_grad_norm=1.0),
        pad_id=tokenizer.pad_token_id,
        reference=reference,
    )
    engine = HFEngine(model, tokenizer, mode=args.engine_mode)
    encoded = [prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    times = []
    for step in range(args.warmup + args.steps):
        began = time.perf_counter()
        chosen = [encoded[(step * args.prompts + i) % len(encoded)] for i in range(args.prompts)]
        prompts = [ids for ids in chosen for _ in range(args.group)]
        params = [
            SamplingParams(max_new_tokens=args.completion, temperature=1.0, seed=message_seed(step, g, s, 0))
            for g in range(args.prompts)
            for s in range(args.group)
        ]
        generations = engine.generate(prompts, params)
        rollouts = []
        for index, (ids, generation) in enumerate(zip(prompts, generations)):
            text = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
            rollouts.append(
                Rollout(
                    str(index // args.group),
                    index // args.group,
                    index % args.group,
                    list(ids),
                    list(generation.token_ids),
                    [1] * len(generation.token_ids),
                    list(generation.logprobs),
                    reward_of(text),
                    None,
                )
            )  # type: ignore[arg-type]
        updater.step(rollouts)
        engine.sync_weights(model)
        times.append(time.perf_counter() - began)
    return times[args.warmup :]


def trl(args: argparse.Namespace, tokenizer: Any) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = args.prompts * (args.warmup + args.steps)
    dataset = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(rows)]}
    )

    def reward(completions: list[Any], **kwargs: Any) -> list[float]:
        return [reward_of(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter() - self.began)

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            use_cpu=not args.cuda,
            bf16=False,
            per_device_train_batch_size=args.prompts * args.group,
            num_generations=args.group,
            max_completion_length=args.completion,
            max_steps=args.warmup + args.steps,
            learning_rate=args.lr,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_grad_norm=1.0,
            beta=args.beta,
            epsilon=0.2,
            loss_type="dapo",
            scale_rewards="group",
            temperature=1.0,
            num_iterations=1,
            logging_steps=1000,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=str(args.folder),
            reward_funcs=reward,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[Timer()],
        )
        trainer.train()
    return times[args.warmup :]


def multi_turn(args: argparse.Namespace, tokenizer: Any) -> tuple[float, int]:
    """Our multi-turn step on BFCL tasks (for information: TRL has no equivalent)."""
    import torch

    from toolenv.data import get_task
    from trainers.config import config_from_dict
    from trainers.train import Trainer

    config = config_from_dict(
        {
            "run": {"mode": "grpo", "out_dir": tempfile.mkdtemp(), "seed": 1, "progress": False},
            "optim": {"lr": args.lr, "warmup_steps": 0},
            "grpo": {
                "steps": 2,
                "prompts_per_step": args.prompts,
                "n": args.group,
                "mini_batches": 1,
                "kl_coef": args.beta,
            },
            "rollout": {"max_new_tokens": args.completion, "max_messages": 4, "max_response_tokens": 2048},
            "monitor": {"val_every": 0, "rollouts_file": False},
        }
    )
    tasks = [
        get_task(t)
        for t in (
            "multi_turn_miss_func_105",
            "multi_turn_base_100",
            "multi_turn_miss_param_105",
            "multi_turn_miss_func_146",
        )
    ]
    trainer = Trainer(config, load(args.folder), tokenizer, tasks=tasks)
    torch.manual_seed(0)
    began = time.perf_counter()
    trainer.run()
    from trainers.monitor import read_metrics

    rows = read_metrics(Path(config.run.out_dir))
    return (time.perf_counter() - began) / len(rows), int(sum(r["rollout/response_tokens"] for r in rows) / len(rows))


def update_workload(args: argparse.Namespace, tokenizer: Any) -> list[Any]:
    """Multi-turn BFCL rollouts to update on, played by the tiny model (the update's cost
    depends on the token layout, not on what the tokens say)."""
    from tests.tiny_model import tiny_qwen2
    from toolenv.inference.hf_engine import HFEngine
    from toolenv.inference.types import SamplingParams
    from toolenv.selection import select_tasks
    from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver, default_env_factory

    tasks = select_tasks(["base", "miss_param", "miss_func"], "train", limit=args.prompts, seed=1)
    driver = RolloutDriver(
        HFEngine(tiny_qwen2(seed=0, tokenizer=tokenizer), tokenizer),
        tokenizer,
        default_env_factory("hermes"),
        SamplingParams(max_new_tokens=args.completion, temperature=1.0),
        Budgets(max_total_tokens=8192, max_messages=args.messages),
        seed=1,
    )
    rollouts = driver.run([EpisodeSpec(t.id, g, s) for g, t in enumerate(tasks) for s in range(args.group)])
    for rollout in rollouts:  # a random policy solves nothing: rewards with variance, so the update moves
        rollout.reward = reward_of(str(rollout.completion_ids))
    return rollouts


def update_only(args: argparse.Namespace, tokenizer: Any) -> None:
    """The shared-prefix update beside the plain one (see the module docstring)."""
    import copy

    import torch

    from toolenv.inference.hf_engine import set_threads
    from trainers.grpo import GRPOConfig, GRPOUpdater

    rollouts = update_workload(args, tokenizer)
    set_threads(torch)  # again: the workload's tiny policy pinned one thread (tests.tiny_model)
    print(
        f"model {args.model}, beta {args.beta}, {torch.get_num_threads()} torch thread(s), {'cuda' if args.cuda else 'cpu'}"
    )
    prompt = sum(len(r.prompt_ids) for r in rollouts)
    total = sum(len(r.input_ids) for r in rollouts)
    print(
        f"update workload: {len(rollouts)} rollouts of {args.prompts} BFCL tasks, {total} tokens "
        f"({total // len(rollouts)} per rollout), prompt {100 * prompt / total:.0f}% of them, "
        f"{sum(r.num_trained_tokens for r in rollouts)} trained"
    )
    initial = load(args.folder)
    reference = copy.deepcopy(initial).requires_grad_(False) if args.beta > 0 else None
    times: dict[bool, list[float]] = {True: [], False: []}
    changes: dict[bool, list[torch.Tensor]] = {}
    for rep in range(args.warmup + args.steps):
        for shared in (False, True) if rep % 2 == 0 else (True, False):
            model = copy.deepcopy(initial).train(True)
            if args.checkpointing:
                model.gradient_checkpointing_enable()
            config = GRPOConfig(kl_coef=args.beta, mini_batches=1, shared_prefix=shared, micro_batch_tokens=args.budget)
            optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
            updater = GRPOUpdater(model, optimizer, None, config, tokenizer.pad_token_id, reference=reference)
            began = time.perf_counter()
            updater.step(rollouts)
            if rep >= args.warmup:
                times[shared].append(time.perf_counter() - began)
            changes[shared] = [(p - q).detach() for p, q in zip(model.parameters(), initial.parameters())]
    worst = max(float((a - b).norm()) / max(float(b.norm()), 1e-12) for a, b in zip(changes[True], changes[False]))
    plain, shared = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"plain update: median {plain:.2f} s over {len(times[False])} ({', '.join(f'{t:.2f}' for t in times[False])})"
    )
    print(
        f"shared-prefix update: median {shared:.2f} s over {len(times[True])} ({', '.join(f'{t:.2f}' for t in times[True])})"
    )
    print(f"ratio plain / shared-prefix: {plain / shared:.2f}x; largest relative weight-change difference {worst:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--completion", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--beta", type=float, default=1e-4)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument(
        "--engine-mode",
        choices=("cached", "batched"),
        default="batched",
        help="our HFEngine mode: batched (one padded batch, as TRL generates; the default here) "
        "or cached (one sequence at a time with KV reuse, the rollout default on CPU)",
    )
    parser.add_argument("--multi-turn", action="store_true")
    parser.add_argument("--update", action="store_true", help="time the update alone, shared prefix vs plain")
    parser.add_argument("--messages", type=int, default=4, help="--update: assistant messages per episode")
    parser.add_argument("--budget", type=int, default=16384, help="--update: micro-batch token budget")
    parser.add_argument("--checkpointing", action="store_true", help="--update: activation checkpointing on")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.utils import logging as hf_logging

    from tests.tiny_model import smollm2_tokenizer
    from toolenv.inference.hf_engine import set_threads

    hf_logging.set_verbosity_error()
    args.cuda = torch.cuda.is_available()
    tokenizer = smollm2_tokenizer()
    scratch = tempfile.TemporaryDirectory()
    args.folder = model_folder(args.model, tokenizer, Path(scratch.name))
    set_threads(torch)  # after the tiny model is built: tests.tiny_model pins one thread for the tests
    if args.update:
        update_only(args, tokenizer)
        return
    print(
        f"workload: {args.model}, {args.prompts} prompts x {args.group} samples x {args.completion} new tokens, "
        f"beta {args.beta}, engine mode {args.engine_mode}, {torch.get_num_threads()} torch thread(s), {'cuda' if args.cuda else 'cpu'}"
    )
    mine = ours(args, tokenizer)
    theirs = trl(args, tokenizer)
    ours_median, trl_median = statistics.median(mine), statistics.median(theirs)
    print(
        f"toolenv GRPO step: median {ours_median:.3f} s over {len(mine)} steps ({', '.join(f'{t:.2f}' for t in mine)})"
    )
    print(
        f"TRL GRPOTrainer step: median {trl_median:.3f} s over {len(theirs)} steps ({', '.join(f'{t:.2f}' for t in theirs)})"
    )
    print(f"ratio TRL / toolenv: {trl_median / ours_median:.2f}x (above 1: toolenv is faster)")
    if args.multi_turn:
        per_step, tokens = multi_turn(args, tokenizer)
        print(
            f"toolenv multi-turn BFCL step (no TRL equivalent): {per_step:.2f} s/step, "
            f"{tokens} completion tokens per rollout (observations included)"
        )


if __name__ == "__main__":
    main()
