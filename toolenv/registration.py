"""Gymnasium ids: ``BFCL-MultiTurn-v0`` (all tasks) and one id per API (tasks involving it),
and the hook through which an upper layer provides OOD task variants.

Keyword arguments are JSON-serialisable and passed through to :class:`toolenv.env.BFCLEnv`
(``categories``, ``split``, ``call_format``, ``observation_mode``, ``max_steps_per_turn``,
``ood``, ``ood_seed``, ``task_file`` …).

Variant provider
    ``toolenv`` sits below ``ood_variants`` and never imports it statically. The provider
    registers itself here (:func:`register_variant_provider`, called when ``ood_variants`` is
    imported). When a variant is asked for and none is registered yet, the provider module named
    by ``VARIANT_PROVIDER`` is imported by name, once, the way Gymnasium resolves an
    ``entry_point`` string: the dependency stays inverted (toolenv defines the hook, the upper
    layer fills it), in-distribution use never loads it, and a user can register another provider.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

import gymnasium as gym

if TYPE_CHECKING:
    from toolenv.data import Task

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


#: the module imported by name when a variant is asked for and no provider is registered
VARIANT_PROVIDER = "ood_variants"

BuildVariant = Callable[["Task", str, int], "Task"]
CheckSpec = Callable[[str], None]
_provider: tuple[BuildVariant, CheckSpec] | None = None


def register_variant_provider(build: BuildVariant, check: CheckSpec) -> None:
    """Install the function that makes a variant of a task from ``(task, spec, seed)`` and the
    one that validates a spec string (raising a one-line ``ValueError``)."""
    global _provider
    _provider = (build, check)


def _variant_provider() -> tuple[BuildVariant, CheckSpec]:
    if _provider is None:
        try:
            importlib.import_module(VARIANT_PROVIDER)  # registers itself on import
        except ImportError as exc:
            raise ValueError(f"OOD variants need the {VARIANT_PROVIDER!r} package ({exc})") from None
    if _provider is None:
        raise ValueError(f"no OOD variant provider is registered ({VARIANT_PROVIDER!r} did not register one)")
    return _provider


def make_variant(task: "Task", spec: str, seed: int = 0) -> "Task":
    """The variant of ``task`` named by ``spec`` (``"rename_tools+shuffle_schema"``) and ``seed``."""
    return _variant_provider()[0](task, spec, int(seed))


def check_variant_spec(spec: str) -> None:
    """A one-line ``ValueError`` (listing the valid names) when ``spec`` is not a valid spec."""
    _variant_provider()[1](spec)
