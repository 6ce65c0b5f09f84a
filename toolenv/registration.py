"""Gymnasium ids: ``BFCL-MultiTurn-v0`` (all tasks) and one id per API (tasks involving it).

Keyword arguments are JSON-serialisable and passed through to :class:`toolenv.env.BFCLEnv`
(``categories``, ``split``, ``call_format``, ``observation_mode``, ``max_steps_per_turn`` …).
"""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "toolenv.env:BFCLEnv"

#: id → the official class name whose tasks it selects (None: every task)
ENV_IDS: dict[str, str | None] = {
    "BFCL-MultiTurn-v0": None,
    "BFCL-FileSystem-v0": "GorillaFileSystem",
    "BFCL-Vehicle-v0": "VehicleControlAPI",
    "BFCL-Trading-v0": "TradingBot",
    "BFCL-Travel-v0": "TravelAPI",
    "BFCL-Twitter-v0": "TwitterAPI",
    "BFCL-Message-v0": "MessageAPI",
    "BFCL-Ticket-v0": "TicketAPI",
    "BFCL-Math-v0": "MathAPI",
}


def register_envs() -> None:
    """Register every id (idempotent)."""
    for env_id, api in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        kwargs = {} if api is None else {"apis": [api]}
        gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs, disable_env_checker=False)
