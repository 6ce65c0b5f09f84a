"""The ``toolenv`` command line: a thin shell over the library.

    toolenv data fetch [--force]     download and verify the pinned bfcl-eval wheel
    toolenv data info                where the data comes from, its version and counts
    toolenv replay [--categories …]  replay every ground truth through the safe executor

Every failure the user can fix is reported as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DataError as exc:
        print(f"toolenv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toolenv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
