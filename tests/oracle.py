"""The official bfcl-eval package as a test oracle, and exact (type-strict) state comparison.

Tests only: the product never imports bfcl-eval. Install it with
``pip install --no-deps bfcl-eval==2026.3.23 mpmath``.

The official engine caches instances in its module globals under a name built from
``model_name`` and the entry id; :class:`OfficialSide` uses a unique model name per side and
removes its instances when closed, so repeated runs never share state.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import random
from decimal import Decimal
from typing import Any, NoReturn, Sequence

import pytest

from tests.release_oracle import use_release_oracle

use_release_oracle()  # before the import below: the oracle must be of the release under test

try:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils as _official_utils
except ImportError:  # pragma: no cover - reported by the tests that need it
    _official_utils = None

_counter = itertools.count()


#: set (CI does) to make the oracle-backed tests fail instead of skip when bfcl-eval is missing:
#: a parity claim must never pass by silently not running
REQUIRE_ORACLE = os.environ.get("TOOLENV_REQUIRE_ORACLE", "") not in ("", "0")
_MISSING = "bfcl-eval is not installed (pip install --no-deps -r tests/oracle-requirements.txt)"


def oracle_missing(reason: str = _MISSING) -> NoReturn:
    """Skip the calling test, or fail it where the oracle is required (``TOOLENV_REQUIRE_ORACLE``)."""
    if REQUIRE_ORACLE:
        pytest.fail(f"{reason}; TOOLENV_REQUIRE_ORACLE is set, so the oracle-backed tests may not skip")
    pytest.skip(reason)


def require_official() -> Any:
    if _official_utils is None:
        oracle_missing()
    return _official_utils


def require_official_module(name: str) -> Any:
    """An official module (e.g. ``bfcl_eval.model_handler.utils``), under the same rule."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        oracle_missing(f"{name} cannot be imported ({exc})")


_PRISTINE: dict[str, Any] = {}
_SHARED_LONG_CONTEXT = ("CREDIT_CARD_EXTENSION", "BOOKING_RECORD_EXTENSION", "LONG_WEATHER_EXTENSION")


def _reset_official_process_state() -> None:
    """Undo the official backends' process-wide leaks before a new side starts, so that each
    oracle run behaves like a fresh process: ``post_tweet``'s mutable default lists are shared
    by every call in the process (``mention()`` can grow them), and the long-context module
    dicts are put into state by reference (a booking mutates them for every later entry)."""
    import copy

    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context, posting_api

    posting_api.TwitterAPI.post_tweet.__defaults__ = ([], [])
    for name in _SHARED_LONG_CONTEXT:
        shared = getattr(long_context, name)
        if name not in _PRISTINE:
            _PRISTINE[name] = copy.deepcopy(shared)
        shared.clear()
        shared.update(copy.deepcopy(_PRISTINE[name]))


def forget_official_instances(prefix: str) -> None:
    """Drop the instances the official engine cached in its module globals under ``prefix``
    (it never frees them, and a reused name would resume from mutated state)."""
    module_globals = vars(require_official())
    for key in [k for k in module_globals if k.startswith(prefix)]:
        del module_globals[key]


class OfficialSide:
    """One side of one entry run by the official engine, with private instances."""

    def __init__(self, involved_classes: Sequence[str], initial_config: dict, long_context: bool, entry_id: str = "x"):
        self._utils = require_official()
        _reset_official_process_state()
        self._model = f"toolenvoracle{next(_counter)}"
        self._args = dict(
            initial_config=initial_config,
            involved_classes=list(involved_classes),
            model_name=self._model,
            test_entry_id=entry_id,
            long_context=long_context,
        )
        _, self.instances = self._utils.execute_multi_turn_func_call([], **self._args)

    def run(self, call_strings: Sequence[str]) -> list[str]:
        results, _ = self._utils.execute_multi_turn_func_call(list(call_strings), **self._args)
        return results

    def close(self) -> None:
        forget_official_instances(self._model + "_")

    def __enter__(self) -> "OfficialSide":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def canonical(value: Any, _depth: int = 0) -> Any:
    """A type-strict, order-preserving form of a value, for exact comparison of two states.

    ``1 == 1.0`` and ``{"a":1,"b":2} == {"b":2,"a":1}`` in Python; here they differ, because
    both change later result strings. Objects (the file system's File/Directory) compare by
    class name and public attributes, without the ``parent`` back-link.
    """
    if _depth > 200:
        return ("deep",)
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return (kind.__name__, value)
    if kind is float:
        return ("float", "nan" if math.isnan(value) else repr(value))
    if kind is dict:
        return ("dict", [(canonical(k, _depth + 1), canonical(v, _depth + 1)) for k, v in value.items()])
    if kind is list:
        return ("list", [canonical(v, _depth + 1) for v in value])
    if kind is tuple:
        return ("tuple", [canonical(v, _depth + 1) for v in value])
    if kind in (set, frozenset):
        return ("set", sorted((canonical(v, _depth + 1) for v in value), key=repr))
    if kind is Decimal or kind.__module__.startswith("mpmath"):
        return (kind.__name__, repr(value))
    if kind is random.Random:
        return ("Random", value.getstate())
    if hasattr(value, "__dict__"):
        attrs = [
            (k, canonical(v, _depth + 1)) for k, v in vars(value).items() if not k.startswith("_") and k != "parent"
        ]
        return ("object", kind.__name__, attrs)
    return (kind.__name__, repr(value))


def public_state(instance: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def rng_state(instance: Any) -> Any:
    """The state of an instance's private RNG (None if it has none); RNG call order decides ids."""
    for value in vars(instance).values():
        if isinstance(value, random.Random):
            return value.getstate()
    return None


def state_differences(ours: Any, theirs: Any) -> list[str]:
    """Attribute-level differences between our instance and the official one ([] if equal)."""
    mine, official = public_state(ours), public_state(theirs)
    problems = []
    if list(mine) != list(official):
        problems.append(f"public attributes differ: ours {list(mine)} official {list(official)}")
    for name in official:
        if name in mine and canonical(mine[name]) != canonical(official[name]):
            problems.append(f"{name}: ours {str(mine[name])[:300]!r} official {str(official[name])[:300]!r}")
    if rng_state(ours) != rng_state(theirs):
        problems.append("RNG state differs")
    return problems


# -- direct comparisons of one backend class (used by the tests/test_backend_*.py files) ---------

OFFICIAL_BACKEND_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"


def official_class(class_name: str) -> type:
    """The official backend class of that name (imported from the installed oracle)."""
    import importlib

    require_official()
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)


def official_pair(ours_class: type, config: dict | None = None, long_context: bool = False) -> tuple[Any, Any]:
    """Our instance and the official one, each loaded from its own copy of the same scenario."""
    import copy

    ours = ours_class()
    ours.load_scenario(copy.deepcopy(config or {}), long_context=long_context)
    theirs = official_class(ours_class.class_name)()
    theirs._load_scenario(copy.deepcopy(config or {}), long_context=long_context)
    return ours, theirs


def call_both(ours: Any, theirs: Any, name: str, *args: Any, **kwargs: Any) -> str:
    """Run one tool on both instances; the results (or exception texts, as the executor reports
    them) and the states must agree. Returns our result text."""
    from toolenv.executor import stringify

    outcomes = []
    for instance in (ours, theirs):
        try:
            outcomes.append(stringify(getattr(instance, name)(*args, **kwargs)))
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    assert outcomes[0] == outcomes[1], name
    assert state_differences(ours, theirs) == []
    return outcomes[0]


def run_ours(
    class_name: str, calls: Sequence[str], config: dict | None = None, long_context: bool = False
) -> tuple[Any, list[str]]:
    """A fresh one-class :class:`~toolenv.executor.Session` and our result texts for ``calls``."""
    from toolenv.executor import Session

    session = Session([class_name], {class_name: config or {}}, long_context)  # Session copies it
    return session, [result.text for result in session.execute_all(calls)]


def compare_with_official(
    class_name: str, calls: Sequence[str], config: dict | None = None, long_context: bool = False
) -> list[str]:
    """Run ``calls`` on both engines; assert identical results, state and RNG state; return ours."""
    import copy

    require_official()
    ours, mine = run_ours(class_name, calls, config, long_context)
    with OfficialSide([class_name], {class_name: copy.deepcopy(config or {})}, long_context) as theirs:
        official = theirs.run(calls)
        for call, a, b in zip(calls, mine, official):
            assert a == b, f"{call}\n ours:     {a[:300]}\n official: {b[:300]}"
        assert state_differences(ours.instances[class_name], theirs.instances[class_name]) == []
    return mine
