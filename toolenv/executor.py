"""The safe executor: one episode side's backend instances, and calls run against them.

A :class:`Session` owns fresh instances of the involved backends. :meth:`Session.execute`
dispatches a :class:`~toolenv.calls.Call` to the public tool method of the instance that
defines it and returns a :class:`Result` whose text is exactly what the official engine
produces: ``str`` results as they are, ``dict`` results through ``json.dumps`` (falling back to
``str`` when that fails, as for mpmath and Decimal values), anything else through ``str``, and
exceptions as ``Error during execution: <message>``.

Only names listed in the involved APIs' function docs are reachable. Unknown names, private or
dunder names, and text that does not parse as a literal-only call give an error result; nothing
raises out of the executor and nothing is evaluated.

A session may carry a :class:`NameMap` (a task variant with renamed tools and parameters): then
only the variant's names are reachable, each translated to its canonical method and parameters
before the call, so the same backends run renamed calls and the canonical names are not callable;
the few places where a result names the canonical tool or a parameter are reworded with the
variant's names (:mod:`toolenv.observations`), data never.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from envs import backend_class, bind_arguments
from envs.base import Backend, StaticPayload, clone
from toolenv.calls import Call, CallSyntaxError, parse_python_call
from toolenv.observations import EXECUTION_PREFIX, reword

ERROR_PREFIX = EXECUTION_PREFIX
_ATOMS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Result:
    """The outcome of one call: the exact text a model sees and the checker compares.

    ``ok`` is False for an error result; ``error_kind`` is then ``"parse"`` (the text was not a
    literal-only call), ``"unknown_function"`` or ``"execution"`` (the method raised).
    """

    text: str
    ok: bool = True
    error_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "ok": self.ok, "error_kind": self.error_kind}


def _dict_encoder() -> Any:
    """``json.dumps``'s own C encoder with its default settings, built once instead of on every
    call (``json.dumps`` builds one per call: more than half its cost on a small dict)."""
    return json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        {}, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )


_ENCODE = _dict_encoder() if getattr(json.encoder, "c_make_encoder", None) else None


def _dumps(value: dict[Any, Any]) -> str:
    """``json.dumps(value)``, exactly (same separators, escaping, key order, errors)."""
    global _ENCODE
    if _ENCODE is None:
        return json.dumps(value)
    try:
        return "".join(_ENCODE(value, 0))
    except Exception:
        _ENCODE = _dict_encoder()  # a failed encode may leave the circularity markers dirty
        return json.dumps(value)  # raises as json.dumps does, for the caller's fallback


def stringify(value: Any) -> str:
    """BFCL's stringification of a method's return value."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        try:
            if StaticPayload.registry and not StaticPayload.registry.keys().isdisjoint(map(id, value.values())):
                return _json_with_payloads(value)
            return _dumps(value)
        except Exception:  # the reference falls back to str() on any failure
            return str(value)
    return str(value)


# id → (payload, its JSON). Payloads are process-lifetime constants created by the backends
# (a model cannot create one), so this stays as small as the long-context filler tables.
_PAYLOAD_JSON: dict[int, tuple[StaticPayload, str]] = {}


def _json_with_payloads(value: dict[Any, Any]) -> str:
    """``json.dumps(value)`` for a flat dict holding shared payloads: each payload is encoded
    once, the rest as usual. Same separators, escaping and key order as ``json.dumps``."""
    if not all(type(key) is str for key in value):
        return json.dumps(value)
    parts = []
    for key, item in value.items():
        if type(item) is StaticPayload:
            cached = _PAYLOAD_JSON.get(id(item))
            if cached is None or cached[0] is not item:
                cached = (item, json.dumps(item))
                _PAYLOAD_JSON[id(item)] = cached
            parts.append(f"{json.dumps(key)}: {cached[1]}")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(item)}")
    return "{" + ", ".join(parts) + "}"


def _fresh(value: Any) -> Any:
    """A private copy of a mutable argument: a backend may keep (and later mutate) what it is
    given, and parsed calls are shared through the parser's cache."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is list and all(type(item) in _ATOMS for item in value):
        return list(value)
    return copy.deepcopy(value)


@dataclass(frozen=True)
class NameMap:
    """Variant tool names → ``(canonical method, {variant parameter: canonical parameter})``.

    Every parameter a variant tool accepts is listed (unchanged names map to themselves); a name
    that is not listed is not callable, which is how non-callable distractor tools stay out.
    """

    tools: Mapping[str, tuple[str, Mapping[str, str]]]

    @classmethod
    def from_json(cls, text: str) -> "NameMap":
        data = json.loads(text)
        return cls({name: (entry[0], dict(entry[1])) for name, entry in data.items()})

    def to_json(self) -> str:
        return json.dumps({name: [canonical, dict(params)] for name, (canonical, params) in self.tools.items()})

    def translate(self, call: Call) -> Call | Result:
        """The canonical call, or the error result a model sees for an unknown name or parameter
        (worded with the variant's names, as Python would word it for the variant's function)."""
        entry = self.tools.get(call.name)
        if entry is None:
            return Result(f"{ERROR_PREFIX}name '{call.name}' is not defined", False, "unknown_function")
        canonical, params = entry
        kwargs = {}
        for key, value in call.kwargs.items():
            target = params.get(key)
            if target is None:
                return Result(
                    f"{ERROR_PREFIX}{call.name}() got an unexpected keyword argument '{key}'", False, "execution"
                )
            kwargs[target] = value
        return Call(canonical, call.args, kwargs)


class Session:
    """Fresh backend instances for one side of one episode, and the calls run on them.

    ``involved_classes`` orders the instances (and the tool list); ``initial_config`` maps a
    class name to its scenario; ``long_context`` is passed to every stateful backend.
    """

    def __init__(
        self,
        involved_classes: Sequence[str],
        initial_config: Mapping[str, Any] | None = None,
        long_context: bool = False,
        copy_config: bool = True,
        name_map: NameMap | None = None,
        version: str | None = None,
    ) -> None:
        """``copy_config=False`` hands the config's contents to the backends without copying;
        only for a config nobody else holds (``Task.initial_config`` returns a fresh one).
        ``name_map``: the variant names that are callable instead of the canonical ones.
        ``version``: the bfcl-eval release whose backends to build (default: the process's)."""
        config = initial_config or {}
        self.name_map = name_map
        self.instances: dict[str, Backend] = {}
        self._dispatch: dict[str, Backend] = {}
        for class_name in involved_classes:
            cls = backend_class(class_name, version)
            instance = cls()
            if not cls.stateless:
                scenario = config.get(class_name, {})
                instance.load_scenario(clone(scenario) if copy_config else scenario, long_context=long_context)
            self.instances[class_name] = instance
            self._dispatch.update(dict.fromkeys(cls.tool_names(), instance))

    @classmethod
    def for_task(cls, task: Any) -> "Session":
        """Fresh instances for one side of a :class:`~toolenv.data.Task` (its own scenario copy).

        Built from the scenario every time: loading is cheap (the backends keep their tables as
        pickled templates), cheaper than copying a prepared snapshot of the instances."""
        scenarios = {name: task.scenario(name) for name in task.involved_classes}
        return cls(
            task.involved_classes,
            scenarios,
            task.long_context,
            copy_config=False,
            name_map=getattr(task, "name_map", None),
            version=task.release,
        )

    @property
    def tool_names(self) -> frozenset[str]:
        """The names a call may use (the variant's names when the session has a name map)."""
        return frozenset(self.name_map.tools if self.name_map is not None else self._dispatch)

    def execute(self, call: Call) -> Result:
        """Run one call; every failure becomes an error :class:`Result`."""
        if self.name_map is not None:
            return self._execute_variant(call, self.name_map)
        return self._run(call)

    def _run(self, call: Call) -> Result:
        """Run a call with canonical names."""
        instance = self._dispatch.get(call.name)
        if instance is None:
            return Result(f"{ERROR_PREFIX}name '{call.name}' is not defined", False, "unknown_function")
        method = getattr(instance, call.name)
        try:
            if call.plain:  # only immutable arguments: nothing to copy
                value = method(*call.args, **call.kwargs)
            else:
                value = method(*map(_fresh, call.args), **{key: _fresh(v) for key, v in call.kwargs.items()})
            # stringification inside the try too: str() of a >4300-digit int raises, as it does
            # (and is reported) in the reference engine
            return Result(stringify(value))
        except Exception as exc:  # any failure of the method is reported as the reference does
            return Result(f"{ERROR_PREFIX}{exc}", False, "execution")

    def _execute_variant(self, call: Call, name_map: NameMap) -> Result:
        translated = name_map.translate(call)
        if isinstance(translated, Result):
            return translated
        if translated.name not in self._dispatch:
            return Result(f"{ERROR_PREFIX}name '{call.name}' is not defined", False, "unknown_function")
        result = self._run(translated)
        # the backend's and Python's texts name the canonical tool and parameters in a few
        # anchored places: reword them, here, so the env and both checker sides see one text
        text = reword(name_map, call.name, translated.name, result.text)
        return result if text is result.text else Result(text, result.ok, result.error_kind)

    def execute_text(self, text: str) -> Result:
        """Parse one python-call string (``cd(folder='a')``) and run it."""
        try:
            call = parse_python_call(text)
        except CallSyntaxError as exc:
            return Result(f"{ERROR_PREFIX}{exc}", False, "parse")
        return self.execute(call)

    def execute_all(self, calls: Iterable[Call | str]) -> list[Result]:
        return [self.execute(c) if isinstance(c, Call) else self.execute_text(c) for c in calls]

    def public_state(self) -> dict[str, dict[str, Any]]:
        """Compared state of every instance: ``{class_name: {attribute: value}}``."""
        return {name: instance.public_state() for name, instance in self.instances.items()}

    def state_copy(self) -> dict[str, dict[str, Any]]:
        """A private deep copy of :meth:`public_state` (shared payloads stay shared)."""
        return _restore(_snapshot(self.public_state()))


class _SnapshotPickler(pickle.Pickler):
    """Pickles state with its :class:`StaticPayload` values by reference: a payload is shared,
    read-only content, and a copy would be registered (and encoded) anew."""

    def persistent_id(self, obj: Any) -> int | None:
        return id(obj) if type(obj) is StaticPayload else None


class _SnapshotUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> StaticPayload:
        return StaticPayload.registry[pid]


def _snapshot(instances: Any) -> bytes:
    buffer = io.BytesIO()
    _SnapshotPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(instances)
    return buffer.getvalue()


def _restore(blob: bytes) -> Any:
    return _SnapshotUnpickler(io.BytesIO(blob)).load()


def keyword_call(call: Call, classes: Iterable[str], version: str | None = None) -> Call:
    """The same call with its positional arguments bound to their parameter names
    (``sort('a.txt')`` -> ``sort(file_name='a.txt')``), as BFCL's checker and result files want
    them; unchanged when it has none or they cannot be bound (:func:`envs.bind_arguments`)."""
    if not call.args:
        return call
    bound = bind_arguments(call.name, call.args, call.kwargs, classes, version)
    return call if bound is None else Call(call.name, (), bound)
