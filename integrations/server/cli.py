"""``toolenv serve``: run the OpenEnv server (registered through the ``toolenv.commands`` group).

    toolenv serve [--host 127.0.0.1] [--port 8000] [--max-sessions 64] [--idle-timeout 300]
                  [--max-body-bytes 1048576] [--format hermes] [--categories …] [--split all]
                  [--ood SPEC --ood-seed N] [--task-file FILE] [--task-dir DIR …] [--data-version V]

The options set each session's defaults; a client's ``reset`` may choose others (task id,
category, call format, OOD variant, data version, a task file inside a ``--task-dir``). Every
option is checked before the server starts. The server extra is imported only by the handler,
so ``toolenv --help`` works without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from integrations.options import add_server_options, given
from toolenv.cli import positive_int


def _env_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The ``BFCLEnv`` arguments the options set (unset ones keep ``BFCLEnv``'s defaults)."""
    chosen = {
        "call_format": args.format,
        "observation_mode": args.observation_mode,
        "categories": args.categories,
        "split": args.split,
        "ood": args.ood,
        "ood_seed": args.ood_seed,
        "task_file": str(Path(args.task_file).resolve()) if args.task_file else None,
        "max_steps_per_turn": args.max_steps_per_turn,
    }
    return given(chosen)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from integrations.server.app import create_app
        from integrations.server.environment import ServeConfig, ToolenvEnvironment
    except ImportError as exc:  # one line, as every user error of the command line
        raise ValueError(f"toolenv serve needs the server extra (pip install 'toolenv[server]'): {exc}") from None
    config = ServeConfig(
        env_defaults=_env_defaults(args),
        task_dirs=tuple(Path(d) for d in args.task_dir),
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        max_body_bytes=args.max_body_bytes,
    )
    ToolenvEnvironment(config).reset()  # a bad default (format, category, file…) fails here, in one line
    app = create_app(config)
    print(f"toolenv serve: http://{args.host}:{args.port} (ws /ws; {config.max_sessions} sessions)", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws_max_size=config.max_body_bytes,  # the transport's own bound, beside the middleware's
        log_level=args.log_level,
    )
    return 0


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add ``serve`` to the ``toolenv`` parser."""
    serve = commands.add_parser("serve", help="serve BFCL episodes over HTTP + WebSocket (OpenEnv contract)")
    add_server_options(
        serve, "sessions open at once, HTTP and WebSocket", "close a session after this long without a request"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=1 << 20,
        metavar="N",
        help="largest request body or WebSocket message, in bytes (at least 1024)",
    )
    serve.add_argument("--format", help="default call format (hermes, python, openai, xml, json_block)")
    serve.add_argument("--observation-mode", choices=("text", "messages"), help="default observation mode")
    serve.add_argument("--categories", nargs="+", metavar="CATEGORY", help="default categories (default: all four)")
    serve.add_argument("--split", help="default split: all, train or test")
    serve.add_argument("--ood", metavar="SPEC", help="serve this OOD variant by default")
    serve.add_argument("--ood-seed", type=int, help="the variants' seed")
    serve.add_argument("--task-file", help="serve this JSON Lines task file by default")
    serve.add_argument(
        "--task-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose task files clients may name in reset (repeatable; default: none)",
    )
    serve.add_argument("--max-steps-per-turn", type=positive_int, help="BFCL's step limit (default 20)")
    serve.set_defaults(handler=_cmd_serve)
