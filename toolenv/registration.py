"""Gymnasium ids: ``BFCL-MultiTurn-v0`` (all tasks) and one id per API (tasks involving it),
and where the OOD task variants come from.

Keyword arguments are JSON-serialisable and passed through to :class:`toolenv.env.BFCLEnv`
(``categories``, ``split``, ``call_format``, ``observation_mode``, ``max_steps_per_turn``,
``ood``, ``ood_seed``, ``task_file`` …).

OOD variants
    ``toolenv`` sits below ``ood_variants`` and imports it nowhere. The variant builder is a
    plugin found through the ``toolenv.variants`` entry-point group, declared in this
    distribution's ``pyproject.toml`` (``ood_variants.registry``: a module or object with
    ``make_variant(task, spec, seed)`` and ``check_spec(spec)``), the way Gymnasium resolves an
    ``entry_point`` string: it is loaded on the first variant asked for, so in-distribution use
    never loads it, and another distribution can provide its own.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from envs import BACKEND_MODULES
from toolenv.data import API_SHORT_NAMES, PRIMARY_CLASSES

if TYPE_CHECKING:
    from toolenv.data import Task

ENTRY_POINT = "toolenv.env:BFCLEnv"

#: short API name → official class name, inverted: the id's name part (file_system → FileSystem)
_ID_NAMES = {class_name: short.title().replace("_", "") for short, class_name in API_SHORT_NAMES.items()}
#: id → the official class name whose tasks it selects (None: every task). One id per API of
#: envs.BACKEND_MODULES (the one per-API table): the benchmark's four primary APIs, then the rest.
ENV_IDS: dict[str, str | None] = {"BFCL-MultiTurn-v0": None} | {
    f"BFCL-{_ID_NAMES[name]}-v0": name
    for name in (*PRIMARY_CLASSES, *(c for c in BACKEND_MODULES if c not in PRIMARY_CLASSES))
}


def register_envs() -> None:
    """Register every id (idempotent)."""
    for env_id, api in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        kwargs = {} if api is None else {"apis": [api]}
        gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs, disable_env_checker=False)


#: the entry-point group of the OOD variant builders (see the module docstring)
VARIANT_GROUP = "toolenv.variants"
#: the builder this distribution ships, preferred when several are installed
DEFAULT_VARIANT_PROVIDER = "ood_variants"


@lru_cache(maxsize=1)
def _variant_provider() -> Any:
    found = {entry.name: entry for entry in entry_points(group=VARIANT_GROUP)}
    if not found:
        raise ValueError(
            f"OOD variants need a builder in the {VARIANT_GROUP!r} entry-point group; install "
            "toolenv (pip install -e .) so that its ood_variants package is registered"
        )
    entry = found.get(DEFAULT_VARIANT_PROVIDER) or found[sorted(found)[0]]
    provider = entry.load()
    if not (callable(getattr(provider, "make_variant", None)) and callable(getattr(provider, "check_spec", None))):
        raise ValueError(f"the {VARIANT_GROUP!r} entry {entry.name!r} ({entry.value}) has no make_variant/check_spec")
    return provider


def make_variant(task: "Task", spec: str, seed: int = 0) -> "Task":
    """The variant of ``task`` named by ``spec`` (``"rename_tools+shuffle_schema"``) and ``seed``."""
    return _variant_provider().make_variant(task, spec, int(seed))


def variant_codec(name: str) -> Any:
    """The codec class the variant builder defines for call format ``name`` (its optional
    ``codec(name)``), or ``None`` when it defines none or there is no builder."""
    try:
        provider = _variant_provider()
    except ValueError:
        return None
    lookup = getattr(provider, "codec", None)
    return lookup(name) if callable(lookup) else None


def check_variant_spec(spec: str) -> None:
    """A one-line ``ValueError`` (listing the valid names) when ``spec`` is not a valid spec."""
    _variant_provider().check_spec(spec)
