"""Command-line options the servers of :mod:`integrations` share (``toolenv serve``,
``toolenv mcp``): where to listen, how many sessions, when an idle one closes, the log level."""

from __future__ import annotations

import argparse
from typing import Any

from toolenv.cli import positive_float, positive_int

DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: the servers run no authentication
DEFAULT_PORT = 8000
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_server_options(parser: argparse.ArgumentParser, sessions: str, idle: str, suffix: str = "") -> None:
    """``--host``, ``--port``, ``--max-sessions``, ``--idle-timeout`` and ``--log-level``;
    ``sessions`` and ``idle`` describe what the server counts and closes, ``suffix`` marks the
    options that only one transport reads (e.g. ``" (http)"``)."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind{suffix}")
    parser.add_argument("--port", type=positive_int, default=DEFAULT_PORT, help=f"port{suffix}")
    parser.add_argument("--max-sessions", type=positive_int, default=64, help=f"{sessions}{suffix}")
    parser.add_argument("--idle-timeout", type=positive_float, default=300.0, metavar="SECONDS", help=f"{idle}{suffix}")
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="the server's log level")


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options a user set (``None`` means unset: the environment keeps its own default)."""
    return {key: value for key, value in options.items() if value is not None}
