"""The eight BFCL multi-turn backends, written for toolenv and behaviour-identical to bfcl-eval.

``BACKEND_MODULES`` maps each official class name to the module that defines it (the one
per-API table: every other one is derived from it); :func:`backend_class` imports it on first
use. :func:`bind_arguments` binds a tool call's positional arguments to its parameter names.
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

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


def tool_owner(tool: str, classes: Iterable[str]) -> str | None:
    """The class among ``classes`` whose tool ``tool`` is, as an episode dispatches it (the last
    one listing it, should two ever share a name); None when none has it."""
    owner = None
    for name in classes:
        if tool in backend_class(name).tool_names():
            owner = name
    return owner


@lru_cache(maxsize=None)
def _signature(class_name: str, tool: str) -> inspect.Signature:
    return inspect.signature(getattr(backend_class(class_name), tool))


def bind_arguments(
    tool: str, args: Sequence[Any], kwargs: Mapping[str, Any], classes: Iterable[str]
) -> dict[str, Any] | None:
    """The keyword arguments of ``tool(*args, **kwargs)``, positional ones bound to their
    parameter names by the method's signature (``sort('a.txt')`` -> ``{'file_name': 'a.txt'}``);
    None when no class in ``classes`` has the tool or the arguments do not fit its signature."""
    owner = tool_owner(tool, classes)
    if owner is None:
        return None
    try:
        bound = _signature(owner, tool).bind(None, *args, **kwargs)  # None stands for self
    except TypeError:
        return None
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(_signature(owner, tool).parameters)))
    return arguments


__all__ = ["BACKEND_MODULES", "Backend", "all_backend_classes", "backend_class", "bind_arguments", "tool_owner"]
