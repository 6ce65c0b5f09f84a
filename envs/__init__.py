"""The eight BFCL multi-turn backends, written for toolenv and behaviour-identical to bfcl-eval.

``BACKEND_MODULES`` maps each official class name to the module that defines it (the one
per-API table: every other one is derived from it); :func:`backend_class` imports it on first
use. :func:`bind_arguments` binds a tool call's positional arguments to its parameter names.

The classes in ``BACKEND_MODULES`` behave as the default release (``DEFAULT_VERSION``). An older
release is a package (``RELEASE_PACKAGES``) whose ``OVERRIDES`` name, per class, a subclass with
that release's behaviour; a class the release did not change is derived with only its
``data_version`` set, so that it reads that release's function docs.
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from envs._official import DEFAULT_VERSION, resolve_version
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


#: the releases other than the default, each a package with an ``OVERRIDES`` table
RELEASE_PACKAGES: dict[str, str] = {"2025.10.2": "envs.v2025_10_2"}


def backend_class(class_name: str, version: str | None = None) -> type[Backend]:
    """The backend class for an official class name (``"TravelAPI"``) as a release behaves
    (default: the process's release, see :mod:`envs._official`); ``KeyError`` if unknown."""
    return _backend_class(class_name, resolve_version(version))


@lru_cache(maxsize=None)
def _backend_class(class_name: str, version: str) -> type[Backend]:
    base: type[Backend] = getattr(importlib.import_module(BACKEND_MODULES[class_name]), class_name)
    if version == DEFAULT_VERSION:
        return base
    overrides: Mapping[str, str] = importlib.import_module(RELEASE_PACKAGES[version]).OVERRIDES
    if class_name in overrides:
        cls: type[Backend] = getattr(importlib.import_module(overrides[class_name]), class_name)
        assert cls.data_version == version, f"{overrides[class_name]}.{class_name} must set data_version"
        return cls
    return type(class_name, (base,), {"data_version": version, "__module__": RELEASE_PACKAGES[version]})


def all_backend_classes(version: str | None = None) -> dict[str, type[Backend]]:
    return {name: backend_class(name, version) for name in BACKEND_MODULES}


def tool_owner(tool: str, classes: Iterable[str], version: str | None = None) -> str | None:
    """The class among ``classes`` whose tool ``tool`` is, as an episode dispatches it (the last
    one listing it, should two ever share a name); None when none has it."""
    owner = None
    for name in classes:
        if tool in backend_class(name, version).tool_names():
            owner = name
    return owner


@lru_cache(maxsize=None)
def _signature(class_name: str, tool: str, version: str) -> inspect.Signature:
    return inspect.signature(getattr(backend_class(class_name, version), tool))


def bind_arguments(
    tool: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    classes: Iterable[str],
    version: str | None = None,
) -> dict[str, Any] | None:
    """The keyword arguments of ``tool(*args, **kwargs)``, positional ones bound to their
    parameter names by the method's signature (``sort('a.txt')`` -> ``{'file_name': 'a.txt'}``);
    None when no class in ``classes`` has the tool or the arguments do not fit its signature."""
    version = resolve_version(version)
    owner = tool_owner(tool, classes, version)
    if owner is None:
        return None
    signature = _signature(owner, tool, version)
    try:
        bound = signature.bind(None, *args, **kwargs)  # None stands for self
    except TypeError:
        return None
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(signature.parameters)))
    return arguments


__all__ = ["BACKEND_MODULES", "Backend", "all_backend_classes", "backend_class", "bind_arguments", "tool_owner"]
