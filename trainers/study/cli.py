"""``toolenv study STUDY.toml [--only LABEL …] [--seed N] [--report-only] [--across-seeds] [--force]``."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_study(args: argparse.Namespace) -> int:
    from trainers.config import apply_data_version
    from trainers.study.config import load_study
    from trainers.study.run import run_study

    study = load_study(args.study)
    if args.across_seeds:
        from trainers.study.seeds import write_seed_summary

        path = write_seed_summary(study)
        print(path)
        print(path.read_text())
        return 0
    if args.seed is not None:
        study = with_seed(study, args.seed)
    apply_data_version(study.config, args.data_version)
    path = run_study(study, only=args.only, report_only=args.report_only, force=args.force)
    print(path)
    print(path.read_text())
    return 0


def with_seed(study: Any, seed: int) -> Any:
    """The study run with ``[run] seed = seed`` for every label, in folders of its own
    (``out_dir/seed-N``, ``report_dir/seed-N``), so that seeds never resume each other's runs."""
    import dataclasses

    for config in [study.config, *study.label_configs.values()]:
        config.run.seed = seed
    return dataclasses.replace(
        study, out_dir=study.out_dir / f"seed-{seed}", report_dir=study.report_dir / f"seed-{seed}"
    )


def add_study_command(commands: "argparse._SubParsersAction[Any]") -> None:
    """Register ``toolenv study STUDY.toml [--only LABEL …] [--report-only] [--force]``."""
    from trainers import study
    from trainers.cli import DefaultsHelpFormatter

    parser = commands.add_parser(
        "study",
        help="train and evaluate a list of supervision methods; one comparison table",
        description=(study.__doc__ or "").split("\n\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument(
        "study",
        help="the study file (TOML), e.g. recipes/study_smollm2_cpu/study.toml; its "
        "[study] out_dir and report_dir are relative to the current folder",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="LABEL",
        help="train and evaluate only these labels (default: every label in [study] methods)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="run every label with this [run] seed, in OUT_DIR/seed-N (and REPORT_DIR/seed-N) "
        "(default: the study file's [run] seed, in OUT_DIR itself)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rebuild the table and plots from the finished runs in [study] out_dir "
        "(refused when a label has none)",
    )
    parser.add_argument(
        "--across-seeds",
        action="store_true",
        help="train nothing: write REPORT_DIR/results-seeds.md, the mean ± std of every score over the "
        "REPORT_DIR/seed-N reports that --seed runs wrote",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write the report even when labels are unfinished or it replaces a report in "
        "[study] report_dir that has more finished labels (rows made with the same settings are carried over, "
        "not lost)",
    )
    parser.set_defaults(handler=_cmd_study)
