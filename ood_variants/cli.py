"""``toolenv ood …`` commands (registered by :mod:`toolenv.cli`).

    toolenv ood list                                   the transforms, their options and groups
    toolenv ood generate --ood SPEC [SPEC …] --ood-seed N --out DIR [--categories …] [--split …]
    toolenv ood show --ood SPEC --task ID [--ood-seed N] [--format F]   one task before/after
    toolenv ood list --grid [--compose SPEC]           BFCL V4's format configurations, one spec a line

``--ood``/``--ood-seed`` are spelt as in ``toolenv eval``; the older ``--variants``/``--variant``
and ``--seed`` still work (hidden aliases), so existing commands keep running.

Heavy imports (``datasets``) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _cmd_list(args: argparse.Namespace) -> int:
    from ood_variants.registry import TRANSFORMS

    if args.grid or args.compose:
        return _print_grid(args.compose)
    for name, transform in TRANSFORMS.items():
        options = "" if transform.fixed is not None or not transform.options else f" [:{'|'.join(transform.options)}]"
        if transform.parse_option is not None:
            options = f" [:{transform.option_help}]"
        print(f"{name + options:<62} {transform.kind:<8} {transform.summary}")
    return 0


def _print_grid(compose: str | None) -> int:
    """The official format-sensitivity configurations of the release, one spec a line (each
    composed with ``compose`` when given), for ``toolenv eval --ood $(toolenv ood list --grid)``."""
    from ood_variants.format_grid import official_configs
    from ood_variants.registry import normalize_spec

    prefix = normalize_spec(compose) + "+" if compose else ""
    specs = [normalize_spec(prefix + config) for config in official_configs()]  # one-line errors first
    print("\n".join(specs))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    from ood_variants.generate import generate
    from ood_variants.registry import normalize_spec
    from toolenv.data import CATEGORIES, normalize_category
    from toolenv.selection import select_tasks

    if not args.ood:  # not argparse's required=: the hidden alias --variants must satisfy it too
        raise ValueError(
            "ood generate needs --ood SPEC [SPEC …], e.g. --ood rename_tools+shuffle_schema (see `toolenv ood list`)"
        )
    specs = [normalize_spec(spec) for spec in args.ood]  # one-line errors before any work
    categories = [normalize_category(c) for c in (args.categories or CATEGORIES)]
    tasks = select_tasks(categories, args.split)
    started = time.perf_counter()

    bars: dict[str, Any] = {}

    def progress(spec: str, number: int, total: int) -> None:
        """One progress bar per spec on stderr (tqdm), closed at its last task."""
        from tqdm import tqdm

        bar = bars.get(spec)
        if bar is None:
            bar = bars[spec] = tqdm(total=total, desc=spec, unit="task", file=sys.stderr, disable=args.quiet)
        bar.update(number - bar.n)
        if number == total:
            bar.close()

    manifest = generate(
        args.out,
        tasks,
        specs,
        args.ood_seed,
        {"categories": categories, "split": args.split},
        tables=not args.jsonl_only,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    print(
        f"{manifest['total']} variant tasks ({len(specs)} specs x {len(tasks)} tasks, seed {args.ood_seed}) "
        f"written to {args.out} in {seconds:.1f} s"
    )
    print(json.dumps({"counts": manifest["counts"], "jsonl_sha256": manifest["jsonl_sha256"]}, indent=2))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ood_variants.registry import make_variant
    from toolenv.data import get_task
    from toolenv.formats import PromptStyle, get_codec, tool_specs

    if not args.ood:
        raise ValueError("ood show needs --ood SPEC, e.g. --ood rename_tools:opaque (see `toolenv ood list`)")
    if args.tools < 1:
        raise ValueError(f"--tools must be a positive number of tools to print, not {args.tools}")
    get_codec(args.format)  # an unknown training format fails here, listing the valid ones
    task = get_task(args.task)  # says what a task id looks like when it is not one
    variant = make_variant(task, args.ood, args.ood_seed)
    for label, item in (("before", task), (f"after: {variant.ood_spec} (seed {variant.ood_seed})", variant)):
        options = item.format_options
        codec = get_codec(options.get("call_format", args.format), PromptStyle.from_options(options))
        tools = tool_specs(item.tool_docs())
        messages = codec.opening_messages(tools[: args.tools], [m.to_dict() for m in item.turns[0]])
        print(f"===== {label}")
        for message in messages:
            print(f"--- [{message['role']}]\n{message['content']}")
        print(f"--- ground truth, turn 0: {list(item.ground_truth[0])}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: …)`` after each help text, except where there is no default to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.required:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _hidden_alias(parser: argparse.ArgumentParser, flag: str, dest: str, **kwargs: Any) -> None:
    """An old spelling of an option: parsed into the same ``dest``, left out of ``--help``."""
    parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add this package's subcommands to the ``toolenv`` parser."""
    from toolenv.data import CATEGORIES, TASK_ID_EXAMPLE
    from toolenv.formats import CODECS
    from toolenv.selection import SPLITS

    ood = commands.add_parser(
        "ood",
        help="OOD variants of the tasks: list transforms, generate sets, show one",
        formatter_class=_HelpFormatter,
    )
    sub = ood.add_subparsers(dest="ood_command", required=True)

    listing = sub.add_parser(
        "list", help="the transforms, their options and what they change", formatter_class=_HelpFormatter
    )
    listing.add_argument(
        "--grid",
        action="store_true",
        help="print BFCL V4's format-sensitivity configurations instead (read from the official distribution), "
        "one spec a line, e.g. for `toolenv eval --ood $(toolenv ood list --grid)`",
    )
    listing.add_argument(
        "--compose", metavar="SPEC", help="with --grid: a spec composed with each configuration, e.g. rename_tools"
    )
    listing.set_defaults(handler=_cmd_list)

    gen = sub.add_parser(
        "generate",
        help="write variant tasks as JSON Lines, a HF dataset and Parquet, with a manifest",
        formatter_class=_HelpFormatter,
    )
    gen.add_argument(
        "--ood",
        nargs="+",
        metavar="SPEC",
        help="required: OOD variant specs such as rename_tools+shuffle_schema or python_list_format "
        "(see `toolenv ood list`), one variant set per spec",
    )
    _hidden_alias(gen, "--variants", "ood", nargs="+", metavar="SPEC")
    gen.add_argument("--ood-seed", type=int, default=0, help="seed of the OOD variants")
    _hidden_alias(gen, "--seed", "ood_seed", type=int)
    gen.add_argument(
        "--categories",
        nargs="+",
        metavar="CATEGORY",
        help=f"categories to vary (default: all four, {', '.join(CATEGORIES)})",
    )
    gen.add_argument("--split", default="all", help=f"{', '.join(SPLITS)} (train/test: the paper's split)")
    gen.add_argument("--out", required=True, help="output folder (required)")
    gen.add_argument(
        "--jsonl-only", action="store_true", help="skip the datasets/Parquet outputs (no 'datasets' needed)"
    )
    gen.add_argument("--quiet", action="store_true", help="no progress on stderr")
    gen.set_defaults(handler=_cmd_generate)

    show = sub.add_parser(
        "show", help="one task's prompt and ground truth before and after a variant", formatter_class=_HelpFormatter
    )
    show.add_argument(
        "--ood", metavar="SPEC", help="required: the OOD variant spec, e.g. rename_tools:opaque+yaml_docs"
    )
    _hidden_alias(show, "--variant", "ood", metavar="SPEC")
    show.add_argument(
        "--task", default="multi_turn_base_0", metavar="TASK_ID", help=f"the task id, e.g. {TASK_ID_EXAMPLE}"
    )
    show.add_argument("--ood-seed", type=int, default=0, help="seed of the OOD variant")
    _hidden_alias(show, "--seed", "ood_seed", type=int)
    show.add_argument("--format", default="hermes", help=f"the training call format ({', '.join(CODECS)})")
    show.add_argument("--tools", type=int, default=3, help="how many tools to print")
    show.set_defaults(handler=_cmd_show)
