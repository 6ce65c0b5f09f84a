"""The ``toolenv`` command line: a thin shell over the library.

    toolenv data fetch [--force]     download and verify the pinned bfcl-eval wheel
    toolenv data info                where the data comes from, its version and counts
    toolenv replay [--categories …]  replay every ground truth through the safe executor
    toolenv eval [--model …] [--limit N] [--ood SPEC …] [--out DIR]   run a model (and OOD variants), resumable, with reports
    toolenv score RUN_DIR | --bfcl-results PATH        (re)score trajectories or official results
    toolenv export RUN_DIR --out DIR                   write official BFCL result files

Every failure the user can fix is reported as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from envs._official import DataError, cached_wheel_path, distribution, fetch_wheel
from toolenv.data import CATEGORIES, load_tasks, normalize_category
from toolenv.executor import Session


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    path = fetch_wheel(force=args.force)
    print(f"bfcl-eval wheel: {path}")
    _cmd_data_info(args)
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    source = distribution()
    print(f"data version: {source.data_version}")
    print(f"source: {source.root}")
    wheel = cached_wheel_path()
    print(f"cached wheel: {wheel if wheel.exists() else '(none)'}")
    for category in CATEGORIES:
        tasks = load_tasks(category)
        turns = sum(len(t.turns) for t in tasks)
        calls = sum(len(turn) for t in tasks for turn in t.ground_truth)
        print(f"  {category:<13} {len(tasks):>4} tasks {turns:>5} turns {calls:>5} ground-truth calls")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    categories = [normalize_category(c) for c in (args.categories or CATEGORIES)]
    summary: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for category in categories:
        tasks = load_tasks(category)
        counts: Counter[str] = Counter()
        category_start = time.perf_counter()
        for number, task in enumerate(tasks, 1):
            session = Session.for_task(task)
            for turn in task.ground_truth_calls:
                for result in session.execute_all(turn):
                    counts["calls"] += 1
                    counts["errors"] += not result.ok
                counts["turns"] += 1
            if not args.quiet and (number % 50 == 0 or number == len(tasks)):
                print(f"\r  {category}: {number}/{len(tasks)} tasks", end="", file=sys.stderr, flush=True)
        if not args.quiet:
            print(file=sys.stderr)
        summary[category] = {
            "tasks": len(tasks),
            "turns": counts["turns"],
            "calls": counts["calls"],
            "error_results": counts["errors"],
            "seconds": round(time.perf_counter() - category_start, 4),
        }
    report = {
        "data_version": distribution().data_version,
        "categories": summary,
        "seconds": round(time.perf_counter() - started, 4),
    }
    print(f"ground-truth replay, {report['data_version']}")
    print(f"  {'category':<13} {'tasks':>5} {'turns':>5} {'calls':>5} {'errors':>6} {'ms':>8}")
    for category, row in summary.items():
        print(
            f"  {category:<13} {row['tasks']:>5} {row['turns']:>5} {row['calls']:>5} "
            f"{row['error_results']:>6} {row['seconds'] * 1000:>8.1f}"
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        print(f"summary written to {args.out}")
    return 0 if all(row["error_results"] == 0 for row in summary.values()) else 1


def _cmd_eval(args: argparse.Namespace) -> int:
    from evaluators.runner import RunConfig, run_eval, run_meta, score_and_report
    from toolenv.formats import CODECS
    from toolenv.models import GenerationConfig, load_model

    categories = [normalize_category(c) for c in args.categories]  # fail fast on bad input
    if args.format not in CODECS:
        raise ValueError(f"unknown call format {args.format!r}; valid: {', '.join(CODECS)}")
    ood: tuple[str, ...] = ()
    if args.ood:
        from toolenv.registration import check_variant_spec

        for spec in args.ood:
            check_variant_spec(spec)
        ood = tuple(" ".join(spec.split()).replace(" ", "") for spec in args.ood)
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    model_name = args.model or ("SmolLM2-135M-Instruct" if not args.endpoint else "")
    config = RunConfig(model=model_name, call_format=args.format, categories=tuple(categories), split=args.split,
                       limit=args.limit, max_steps_per_turn=args.max_steps_per_turn, batch_size=args.batch_size,
                       seed=args.seed, generation=generation.to_dict(), ood=ood, ood_seed=args.ood_seed)
    out = Path(args.out)
    model = load_model(args.model, engine=args.engine, endpoint=args.endpoint, generation=generation,
                       native_tools=args.format == "openai")
    trajectories = run_eval(model, config, out, command=" ".join(sys.argv), progress=not args.quiet)
    paths = score_and_report(out, trajectories, run_meta(out))
    print((out / "report.md").read_text())
    print(f"HTML report: {paths['html']}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from evaluators.interop import read_bfcl_results
    from evaluators.runner import TRAJECTORIES, run_meta, score_and_report
    from toolenv.trajectory import read_jsonl

    source = Path(args.path)
    if args.bfcl_results:
        trajectories = list(read_bfcl_results([source]))
        out = Path(args.out or "bfcl-scored")
        out.mkdir(parents=True, exist_ok=True)
        meta = {"data_version": distribution().data_version, "model": {"name": args.model_name or source.name},
                "call_format": "bfcl", "seed": None, "command": " ".join(sys.argv)}
    else:
        path = source / TRAJECTORIES
        if not path.exists():
            raise ValueError(f"{source} holds no {TRAJECTORIES}")
        trajectories = list(read_jsonl(path))
        out = Path(args.out) if args.out else source
        meta = run_meta(source)
    paths = score_and_report(out, trajectories, meta)
    print((out / "report.md").read_text())
    print(f"HTML report: {paths['html']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from evaluators.interop import write_bfcl_results
    from evaluators.runner import TRAJECTORIES
    from toolenv.trajectory import read_jsonl

    path = Path(args.run_dir) / TRAJECTORIES
    if not path.exists():
        raise ValueError(f"{args.run_dir} holds no {TRAJECTORIES}")
    for written in write_bfcl_results(read_jsonl(path), Path(args.out)):
        print(written)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolenv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="the official BFCL data")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download and verify the pinned bfcl-eval wheel")
    fetch.add_argument("--force", action="store_true", help="download again even if the cache is valid")
    fetch.set_defaults(handler=_cmd_data_fetch)
    info = data_commands.add_parser("info", help="data source, version and counts")
    info.set_defaults(handler=_cmd_data_info)

    replay = commands.add_parser("replay", help="replay every ground truth through the safe executor")
    replay.add_argument("--categories", nargs="+", metavar="CATEGORY", help=f"default: all ({', '.join(CATEGORIES)})")
    replay.add_argument("--out", help="write the summary as JSON to this file")
    replay.add_argument("--quiet", action="store_true", help="no progress on stderr")
    replay.set_defaults(handler=_cmd_replay)

    evaluate = commands.add_parser("eval", help="run a model on BFCL multi-turn tasks (resumable) and report")
    evaluate.add_argument("--model", help="'smollm2' (default: the embedded SmolLM2-135M-Instruct), a local "
                          "transformers folder, or the model name served at --endpoint")
    evaluate.add_argument("--engine", default="transformers", help="transformers (default) or vllm")
    evaluate.add_argument("--endpoint", help="base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    evaluate.add_argument("--format", default="hermes", help="call format (hermes, python, openai, xml, json_block)")
    evaluate.add_argument("--categories", nargs="+", default=list(CATEGORIES), metavar="CATEGORY")
    evaluate.add_argument("--split", default="all", help="all, train or test (the paper's split)")
    evaluate.add_argument("--limit", type=int, help="at most this many tasks, spread over the categories")
    evaluate.add_argument("--max-steps-per-turn", type=int, default=20)
    evaluate.add_argument("--max-new-tokens", type=int, default=256)
    evaluate.add_argument("--temperature", type=float, default=0.0)
    evaluate.add_argument("--batch-size", type=int, default=8, help="episodes run in lockstep")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--ood", nargs="+", metavar="SPEC", help="also play each task as these OOD variants "
                          "(e.g. rename_tools+shuffle_schema python_list_format; see `toolenv ood list`); the report "
                          "shows in-distribution and each variant side by side with the drop")
    evaluate.add_argument("--ood-seed", type=int, default=0, help="seed of the OOD variants")
    evaluate.add_argument("--out", default="runs/eval", help="run folder (an unfinished run there is resumed)")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(handler=_cmd_eval)

    score = commands.add_parser("score", help="score a run folder, or official `bfcl generate` result files")
    score.add_argument("path", help="a toolenv run folder, or (with --bfcl-results) a BFCL result file or folder")
    score.add_argument("--bfcl-results", action="store_true", help="PATH holds official BFCL result files")
    score.add_argument("--model-name", help="model name to record for BFCL result files")
    score.add_argument("--out", help="where to write the reports (default: the run folder)")
    score.set_defaults(handler=_cmd_score)

    export = commands.add_parser("export", help="write a run's trajectories as official BFCL result files")
    export.add_argument("run_dir")
    export.add_argument("--out", required=True)
    export.set_defaults(handler=_cmd_export)

    # Commands of the upper layers register themselves; their modules import heavy
    # dependencies (torch, datasets) only inside the handlers, so `toolenv --help` stays fast.
    from ood_variants.cli import add_commands as add_ood_commands
    from trainers.cli import add_commands as add_trainer_commands

    add_ood_commands(commands)
    add_trainer_commands(commands)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from evaluators.interop import InteropError
    from evaluators.runner import RunError
    from toolenv.models.base import ModelError

    return (DataError, ModelError, RunError, InteropError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as exc:  # user-fixable: one line, no traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"toolenv: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toolenv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
