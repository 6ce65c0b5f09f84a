"""``toolenv mcp``: serve one BFCL task as an MCP server (registered through ``toolenv.commands``).

    toolenv mcp --task ID [--format openai] [--ood SPEC --ood-seed N] [--max-steps-per-turn N]
                [--transport stdio|http] [--host 127.0.0.1] [--port 8000]
                [--max-sessions 64] [--idle-timeout 300] [--data-version V]

Every option is checked before the server starts (a bad task id, format or variant is one line
on stderr). The ``mcp`` extra is imported only by the handler, so ``toolenv --help`` works
without it. With ``--transport stdio`` nothing but MCP messages goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from integrations.options import add_server_options, given
from toolenv.cli import positive_int


def _env_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``BFCLEnv`` arguments the options set (unset ones keep the episode's defaults)."""
    chosen = {
        "call_format": args.format,
        "ood": args.ood,
        "ood_seed": args.ood_seed,
        "max_steps_per_turn": args.max_steps_per_turn,
    }
    return given(chosen)


def _cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from integrations.mcp.episode import env_kwargs, load_task
        from integrations.mcp.server import McpConfig, create_server, http_app, run_stdio
    except ImportError as exc:  # one line, as every user error of the command line
        raise ValueError(f"toolenv mcp needs the mcp extra (pip install 'toolenv[mcp]'): {exc}") from None
    options = _env_options(args)
    task = load_task(args.task, **env_kwargs(**options))  # a bad id, format or variant fails here
    server = create_server(McpConfig(task, options))
    if args.transport == "stdio":
        run_stdio(server)
        return 0
    import uvicorn

    app = http_app(server, args.host, args.max_sessions, args.idle_timeout)
    print(f"toolenv mcp: {task.id} at http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add ``mcp`` to the ``toolenv`` parser."""
    mcp = commands.add_parser(
        "mcp", help="serve one BFCL task's tools as an MCP server (stdio or Streamable HTTP), one episode per session"
    )
    mcp.add_argument("--task", required=True, metavar="ID", help="the task to serve, e.g. multi_turn_base_0")
    mcp.add_argument(
        "--format",
        help="call format of the prompt texts (the system prompt resource, miss_func reveals): "
        "hermes, python, openai, xml, json_block (default: openai)",
    )
    mcp.add_argument("--ood", metavar="SPEC", help="serve this OOD variant of the task (see toolenv ood list)")
    mcp.add_argument("--ood-seed", type=int, help="the variant's seed")
    mcp.add_argument("--max-steps-per-turn", type=positive_int, help="BFCL's step limit (default 20)")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="stdio, or Streamable HTTP")
    add_server_options(
        mcp,
        "MCP sessions open at once",
        "end a session (and free its episode) after this long without a request",
        suffix=" (http)",
    )
    mcp.set_defaults(handler=_cmd_mcp)
