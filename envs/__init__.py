"""The eight BFCL multi-turn backends, written for toolenv and behaviour-identical to bfcl-eval.

``BACKEND_MODULES`` maps each official class name to the module that defines it;
:func:`backend_class` imports it on first use.
"""

from __future__ import annotations

import importlib

from envs.base import Backend

BACKEND_MODULES: dict[str, str] = {
    "GorillaFileSystem": "envs.file_system",
    "MathAPI": "envs.math_api",
    "MessageAPI": "envs.message",
    "TwitterAPI": "envs.twitter",
    "TicketAPI": "envs.ticket",
    "TradingBot": "envs.trading",
    "TravelAPI": "envs.travel",
    "VehicleControlAPI": "envs.vehicle",
}


def backend_class(class_name: str) -> type[Backend]:
    """The backend class for an official class name (``"TravelAPI"``); ``KeyError`` if unknown."""
    module = importlib.import_module(BACKEND_MODULES[class_name])
    return getattr(module, class_name)


def all_backend_classes() -> dict[str, type[Backend]]:
    return {name: backend_class(name) for name in BACKEND_MODULES}


__all__ = ["BACKEND_MODULES", "Backend", "backend_class", "all_backend_classes"]
