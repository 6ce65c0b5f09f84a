"""The ``toolenv`` command line: a thin shell over the library.

Every failure the user can fix is reported as one line on stderr with a non-zero exit, and is
found before anything is written: a corrected command never meets the debris of a wrong one.
``toolenv --help`` lists every subcommand; ``toolenv COMMAND --help`` shows each option with
its default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from importlib.metadata import entry_points
from typing import Any, Callable, NoReturn, Sequence

from envs._official import (
    DataError,
    cached_wheel_path,
    check_version,
    distribution,
    fetch_wheel,
    known_versions,
    select_version,
)
from toolenv.data import CATEGORIES, load_tasks, normalize_category
from toolenv.executor import Session
from toolenv.inference import ModelError, one_line


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    path = fetch_wheel(force=args.force)  # the selected release (--data-version)
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


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {value})")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number >= 0 (NaN refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0 (got 0)")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and every option's default shown (except "no default")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if (
            action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
            or "%(default)" in (action.help or "")
        ):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with the project's error shape: one line on stderr, exit 2 (no usage dump), and
    the formatter above for every subcommand (they are created with this class)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("toolenv")
    except PackageNotFoundError:
        ours = "unknown"
    return f"toolenv {ours} (BFCL data: bfcl-eval {known_versions()})"


def data_version_arg(text: str) -> str:
    """An argparse type: a pinned BFCL release."""
    try:
        return check_version(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_data_version_option(parser: argparse.ArgumentParser) -> None:
    """``--data-version`` on ``parser`` and, recursively, on each of its subcommands: every
    command reads the release it names (see :func:`main`)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        if not any("--data-version" in a.option_strings for a in parser._actions):
            parser.add_argument(
                "--data-version",
                type=data_version_arg,
                metavar="VERSION",
                help=f"the BFCL release to use: {known_versions()} (default: $TOOLENV_DATA_VERSION, "
                "else the default release)",
            )
        return
    for action in subcommands:
        for child in dict.fromkeys(action.choices.values()):
            add_data_version_option(child)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="toolenv", description=__doc__)
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser(
        "data", help="the official BFCL data: fetch the pinned wheel, show its version and counts"
    )
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_commands.add_parser(
        "fetch", help="download and verify the pinned bfcl-eval wheel of a release (default: the selected one)"
    )
    fetch.add_argument("--force", action="store_true", help="download again even if the cache is valid")
    fetch.set_defaults(handler=_cmd_data_fetch)
    info = data_commands.add_parser("info", help="data source, version and counts")
    info.set_defaults(handler=_cmd_data_info)

    replay = commands.add_parser("replay", help="replay every ground truth through the safe executor")
    replay.add_argument("--categories", nargs="+", metavar="CATEGORY", help=f"default: all ({', '.join(CATEGORIES)})")
    replay.add_argument("--out", help="write the summary as JSON to this file")
    replay.add_argument("--quiet", action="store_true", help="no progress on stderr")
    replay.set_defaults(handler=_cmd_replay)

    # The command line is the composition root. The other layers' subcommands are plugins,
    # found through the "toolenv.commands" entry-point group (pyproject.toml), so that this
    # package imports none of the layers above it. Their modules import heavy dependencies
    # (torch, datasets) only inside the handlers, so `toolenv --help` stays fast.
    for add_commands in command_plugins():
        add_commands(commands)
    add_data_version_option(parser)
    return parser


#: the entry-point group through which the upper layers add their subcommands
COMMAND_GROUP = "toolenv.commands"
#: the order of the built-in plugins in ``--help`` (others follow, by name)
PLUGIN_ORDER = ("evaluate", "ood", "train")


def command_plugins() -> list[Callable[[Any], None]]:
    """The ``add_commands(subparsers)`` functions registered in :data:`COMMAND_GROUP`."""
    found = sorted(
        entry_points(group=COMMAND_GROUP),
        key=lambda e: (PLUGIN_ORDER.index(e.name) if e.name in PLUGIN_ORDER else len(PLUGIN_ORDER), e.name),
    )
    return [entry.load() for entry in found]


#: what a user can fix: one line on stderr, exit 2, no traceback (every layer's error types
#: derive from these: RunError and InteropError are ValueErrors, EngineError a ModelError)
USER_ERRORS: tuple[type[BaseException], ...] = (DataError, ModelError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "data_version", None):
            select_version(args.data_version)  # the process's release, for every layer below
        return args.handler(args)
    except USER_ERRORS as exc:  # user-fixable: one line, no traceback
        print(f"toolenv: error: {one_line(str(exc), 500) or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toolenv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
