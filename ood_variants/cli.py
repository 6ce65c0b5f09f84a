"""``toolenv ood …`` commands (registered by :mod:`toolenv.cli`).

    toolenv ood list                                   the transforms, their options and groups
    toolenv ood generate --variants SPEC [SPEC …] --seed N --out DIR [--categories …] [--split …]
    toolenv ood show --variant SPEC --task ID [--seed N] [--format F]   one task before/after

Heavy imports (``datasets``) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _cmd_list(args: argparse.Namespace) -> int:
    from ood_variants.registry import TRANSFORMS

    for name, transform in TRANSFORMS.items():
        options = "" if transform.fixed is not None or not transform.options else f" [:{'|'.join(transform.options)}]"
        print(f"{name + options:<62} {transform.kind:<8} {transform.summary}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    from ood_variants.generate import generate
    from ood_variants.registry import normalize_spec
    from toolenv.data import CATEGORIES, normalize_category, select_tasks

    specs = [normalize_spec(spec) for spec in args.variants]  # one-line errors before any work
    categories = [normalize_category(c) for c in (args.categories or CATEGORIES)]
    tasks = select_tasks(categories, args.split)
    started = time.perf_counter()

    def progress(spec: str, number: int, total: int) -> None:
        if not args.quiet and (number % 100 == 0 or number == total):
            print(f"\r  {spec}: {number}/{total} tasks", end="\n" if number == total else "", file=sys.stderr, flush=True)

    manifest = generate(args.out, tasks, specs, args.seed, {"categories": categories, "split": args.split},
                        tables=not args.jsonl_only, progress=progress)
    seconds = time.perf_counter() - started
    print(f"{manifest['total']} variant tasks ({len(specs)} specs x {len(tasks)} tasks, seed {args.seed}) "
          f"written to {args.out} in {seconds:.1f} s")
    print(json.dumps({"counts": manifest["counts"], "jsonl_sha256": manifest["jsonl_sha256"]}, indent=2))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ood_variants.registry import make_variant
    from toolenv.data import get_task
    from toolenv.env import tool_specs
    from toolenv.formats import PromptStyle, get_codec

    task = get_task(args.task)
    variant = make_variant(task, args.variant, args.seed)
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


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add this package's subcommands to the ``toolenv`` parser."""
    ood = commands.add_parser("ood", help="OOD variants of the tasks: list transforms, generate sets, show one")
    sub = ood.add_subparsers(dest="ood_command", required=True)

    listing = sub.add_parser("list", help="the transforms, their options and what they change")
    listing.set_defaults(handler=_cmd_list)

    gen = sub.add_parser("generate", help="write variant tasks as JSON Lines, a HF dataset and Parquet, with a manifest")
    gen.add_argument("--variants", nargs="+", required=True, metavar="SPEC",
                     help="specs such as rename_tools+shuffle_schema or python_list_format (see `toolenv ood list`)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--categories", nargs="+", metavar="CATEGORY", help="default: all four")
    gen.add_argument("--split", default="all", help="all, train or test (the paper's split)")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--jsonl-only", action="store_true", help="skip the datasets/Parquet outputs (no 'datasets' needed)")
    gen.add_argument("--quiet", action="store_true")
    gen.set_defaults(handler=_cmd_generate)

    show = sub.add_parser("show", help="one task's prompt and ground truth before and after a variant")
    show.add_argument("--variant", required=True, metavar="SPEC")
    show.add_argument("--task", default="multi_turn_base_0")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--format", default="hermes", help="the training call format (default hermes)")
    show.add_argument("--tools", type=int, default=3, help="how many tools to print (default 3)")
    show.set_defaults(handler=_cmd_show)
