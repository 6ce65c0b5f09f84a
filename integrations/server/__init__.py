"""``toolenv serve``: BFCL multi-turn episodes behind OpenEnv's environment contract.

One isolated :class:`toolenv.env.BFCLEnv` episode per session, over WebSocket (``/ws``,
OpenEnv's own session protocol) or HTTP (``/reset``, ``/step``, ``/state``, ``/close`` with a
``session_id``). Needs the ``server`` extra (``pip install -e '.[server]'``).

- :mod:`~integrations.server.models`: the typed action, observation, state and reset options;
- :mod:`~integrations.server.environment`: the OpenEnv ``Environment`` that drives ``BFCLEnv``;
- :mod:`~integrations.server.app`: the FastAPI app (``create_app``) and its limits;
- :mod:`~integrations.server.client`: :class:`ToolenvClient` (HTTP or WebSocket, synchronous)
  and :class:`ToolenvEnvClient` (OpenEnv's async ``EnvClient``);
- :mod:`~integrations.server.cli`: the ``serve`` subcommand.

This module imports nothing from the extra, so that ``toolenv --help`` works without it; the
names below are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ServeConfig": "integrations.server.environment",
    "ToolenvEnvironment": "integrations.server.environment",
    "ToolenvAction": "integrations.server.models",
    "ToolenvObservation": "integrations.server.models",
    "ToolenvState": "integrations.server.models",
    "create_app": "integrations.server.app",
    "ToolenvClient": "integrations.server.client",
    "ToolenvEnvClient": "integrations.server.client",
    "ServerError": "integrations.server.client",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
