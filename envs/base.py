"""What every backend shares: identity, scenario loading contract, tool docs and schemas.

A backend is plain Python state plus public methods (the tools). It knows nothing about text
formats, parsing or scoring. Conventions, identical to the official backends:

- ``cls()`` takes no arguments; ``load_scenario(config, long_context=...)`` then sets the state
  from a scenario dict (missing keys take the official defaults). Stateless backends (MathAPI)
  are never loaded.
- Every attribute without a leading underscore is *compared state*; private attributes (RNG,
  current directory, …) are never compared.
- The tools are exactly the methods named in the official function docs; nothing else on the
  instance is reachable from model text (the executor enforces that).
"""

from __future__ import annotations

import copy
import json
import pickle
import random
from functools import lru_cache
from typing import Any, ClassVar, Mapping

from envs._official import DEFAULT_VERSION, distribution, official_literal, resolve_version

FUNC_DOC_DIR = "data/multi_turn_func_doc"

# BFCL's parameter type names → JSON Schema types. ``any`` becomes an unconstrained schema.
_GORILLA_TO_JSON_SCHEMA = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "number": "number",
    "null": "null",
}


class Template:
    """A read-only snapshot of a literal value; :meth:`fresh` returns an independent deep copy.

    Backends keep their default state and tables as templates: one ``pickle.loads`` of a
    pre-built blob is several times faster than ``copy.deepcopy`` and a fresh instance must
    never share mutable state with another one.
    """

    __slots__ = ("_blob",)

    def __init__(self, value: Any) -> None:
        self._blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def fresh(self) -> Any:
        return pickle.loads(self._blob)


def official_template(module_file: str, dotted_name: str, version: str | None = None) -> Template:
    """A :class:`Template` of a literal read from the official sources (see ``official_literal``)."""
    return _official_template(module_file, dotted_name, resolve_version(version))


@lru_cache(maxsize=128)
def _official_template(module_file: str, dotted_name: str, version: str) -> Template:
    return Template(official_literal(module_file, dotted_name, version))


def clone(value: Any) -> Any:
    """An independent deep copy of a JSON-like value (dicts, lists, sets, tuples, scalars)."""
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


@lru_cache(maxsize=64)
def _seeded_state(seed: Any) -> tuple:
    return random.Random(seed).getstate()


def seeded_random(seed: Any) -> random.Random:
    """``random.Random(seed)``, faster: the seeded state is computed once per seed (seeding the
    Mersenne Twister costs more than copying its state) and copied into a new generator."""
    try:
        state = _seeded_state(seed)
    except TypeError:  # unhashable seed: let Random raise its own error
        return random.Random(seed)
    generator = random.Random.__new__(random.Random)
    generator.setstate(state)
    return generator


class StaticPayload(tuple):
    """Large read-only content shared by every instance (long-context filler) that a backend
    puts into a result dict. It encodes to the same JSON as a list; the executor encodes each
    payload once per process instead of on every call. Never put one into compared state.

    Payloads live for the whole process (``registry`` holds them by id, so an id is never
    reused while it is registered); create them once, from official constants only."""

    __slots__ = ()
    registry: ClassVar[dict[int, "StaticPayload"]] = {}

    def __new__(cls, items: Any = ()) -> "StaticPayload":
        payload = super().__new__(cls, items)
        cls.registry[id(payload)] = payload
        return payload


class Backend:
    """Base class of the eight BFCL backends (see module docstring)."""

    #: the official class name, also the key in ``initial_config`` and ``involved_classes``
    class_name: ClassVar[str] = ""
    #: the official function-doc file in ``data/multi_turn_func_doc``
    doc_file: ClassVar[str] = ""
    #: stateless backends are not given a scenario (MathAPI)
    stateless: ClassVar[bool] = False
    #: the bfcl-eval release whose behaviour and function docs this class has; a release's
    #: behaviour differences are subclasses (``envs/v2025_10_2/``), see :func:`envs.backend_class`
    data_version: ClassVar[str] = DEFAULT_VERSION

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        """Set the state from ``config``; keys missing from it take the official defaults.

        The backend takes ownership of ``config``'s contents (it may keep references to them):
        pass a private copy, as :class:`toolenv.executor.Session` does.
        """
        raise NotImplementedError

    def public_state(self) -> dict[str, Any]:
        """The compared state: every attribute whose name does not start with ``_``."""
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    # -- tools ------------------------------------------------------------------------------

    @classmethod
    def tool_docs(cls) -> list[dict[str, Any]]:
        """The official function docs of this API (a fresh deep copy, in the file's order)."""
        return copy.deepcopy(_tool_docs(cls.doc_file, cls.data_version))

    @classmethod
    def tool_names(cls) -> frozenset[str]:
        """The names of the public methods a model may call."""
        return _tool_names(cls.doc_file, cls.data_version)


@lru_cache(maxsize=32)
def _tool_docs(doc_file: str, version: str) -> tuple[dict[str, Any], ...]:
    text = distribution(version).read_text(f"{FUNC_DOC_DIR}/{doc_file}")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


@lru_cache(maxsize=32)
def _tool_names(doc_file: str, version: str) -> frozenset[str]:
    return frozenset(doc["name"] for doc in _tool_docs(doc_file, version))


def json_schema(gorilla: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one BFCL parameter schema (Gorilla dialect) to standard JSON Schema.

    dict→object, float→number, tuple→array, any→{} (no constraint); ``properties``, ``items``
    and ``additionalProperties`` are converted recursively; descriptions, enums, defaults and
    ``required`` are kept.
    """
    out: dict[str, Any] = {}
    for key, value in gorilla.items():
        if key == "type":
            if value == "any":
                continue
            out["type"] = _GORILLA_TO_JSON_SCHEMA.get(value, value)
        elif key == "properties":
            out["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out["items"] = json_schema(value)
        elif key == "additionalProperties" and isinstance(value, Mapping):
            out["additionalProperties"] = json_schema(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tool_schema(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as a JSON-Schema tool: name, description, parameters."""
    return {
        "name": doc["name"],
        "description": doc.get("description", ""),
        "parameters": json_schema(doc.get("parameters", {"type": "dict", "properties": {}})),
    }
