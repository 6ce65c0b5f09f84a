"""``toolenv train`` / ``toolenv plot`` commands (registered by :mod:`toolenv.cli`).

    toolenv train CONFIG [--resume] [--out-dir DIR]   run an SFT or GRPO configuration (recipes/*.toml)
    toolenv train CONFIG --plan [--gpu-memory GIB]     its expected peak memory per device, by part
    toolenv plot RUN_DIR [--out DIR]  draw a training run's metrics as PNG files

Handlers import torch and transformers only when they run, so ``toolenv --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_train(args: argparse.Namespace) -> int:
    from trainers.config import apply_data_version, load_config

    config = load_config(args.config)  # validated before anything heavy is imported
    apply_data_version(config, args.data_version)
    if args.out_dir:
        config.run.out_dir = args.out_dir
    if args.plan or args.gpu_memory:
        return _print_plan(config, args.gpu_memory, args.devices)
    from trainers.train import train

    run_dir = train(config, resume=args.resume)
    print(f"run folder: {run_dir}")
    return 0


def _print_plan(config: Any, gpu_memory: float | None, devices: int | None) -> int:
    """Print the run's memory plan; exit status 1 (with the one-line reason) when it cannot fit."""
    import sys

    from trainers.plan import architecture, estimate, plan_for

    if gpu_memory:  # plan for GPUs this machine does not have
        plan = estimate(config, architecture(config.model.path), "cuda", int(gpu_memory * 2**30), devices or 1)
    else:
        plan = plan_for(config)
    print(plan.render())
    reason = plan.refusal()
    if reason:
        sys.stderr.write(f"toolenv: {reason}\n")
        return 1
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainers.plots import plot_run

    written = plot_run(Path(args.run_dir), Path(args.out) if args.out else None)
    for path in written:
        print(path)
    return 0


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help text already says it (a ``None``
    default means "taken from elsewhere", which the help text explains)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add this package's subcommands to the ``toolenv`` parser."""
    train = commands.add_parser(
        "train",
        help="train a model (SFT or GRPO) from a TOML config",
        description="Train a model (SFT or GRPO) from a TOML run configuration; the run "
        "folder gets config.json, metrics.jsonl, checkpoints/ and final/.",
        formatter_class=DefaultsHelpFormatter,
    )
    train.add_argument("config", help="a TOML run configuration naming [run] mode and [model] path (see recipes/)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in [run] out_dir from its last checkpoint"
    )
    train.add_argument("--out-dir", metavar="DIR", help="the run folder (default: the config's [run] out_dir)")
    train.add_argument(
        "--plan",
        action="store_true",
        help="print the expected peak memory per device by part (weights, gradients, optimizer, reference, "
        "activations, logits chunk, vLLM) and the per-step token budget, and exit (status 1 if it cannot fit)",
    )
    from toolenv.cli import positive_float, positive_int

    train.add_argument(
        "--gpu-memory",
        type=positive_float,
        metavar="GIB",
        help="with --plan: plan for CUDA devices of this many GiB (default: this machine's devices)",
    )
    train.add_argument("--devices", type=positive_int, metavar="N", help="with --gpu-memory: how many (default 1)")
    train.set_defaults(handler=_cmd_train)

    plot = commands.add_parser(
        "plot",
        help="plot a training run's metrics.jsonl",
        description="Draw a training run's metrics.jsonl as PNG files.",
        formatter_class=DefaultsHelpFormatter,
    )
    plot.add_argument("run_dir", metavar="RUN_DIR", help="a training run folder (holds metrics.jsonl)")
    plot.add_argument("--out", metavar="DIR", help="folder for the PNG files (default: RUN_DIR/plots)")
    plot.set_defaults(handler=_cmd_plot)

    from trainers.study.cli import add_study_command  # `toolenv study` (supervision methods compared)

    add_study_command(commands)
