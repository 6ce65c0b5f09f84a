"""``toolenv train`` / ``toolenv plot`` commands (registered by :mod:`toolenv.cli`).

    toolenv train CONFIG [--resume] [--out-dir DIR]   run an SFT or GRPO configuration (recipes/*.toml)
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
    from trainers.train import train

    run_dir = train(config, resume=args.resume)
    print(f"run folder: {run_dir}")
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
