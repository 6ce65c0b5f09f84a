"""The ``Call`` record and the parser for BFCL's python-call text, built on :mod:`ast` alone.

Model text is never evaluated. A call is accepted only when it is a plain function name applied
to literal arguments (strings, numbers, booleans, ``None`` and lists, tuples, dicts and sets of
them, with unary signs on numbers). Everything else (attribute access, names, operators,
lambdas, comprehensions, ``**`` unpacking, oversized or too deeply nested input) raises
:class:`CallSyntaxError` with a one-line reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Mapping

#: longest call text accepted (characters); longer input is refused before parsing
MAX_CALL_TEXT = 200_000
#: deepest container nesting accepted inside an argument
MAX_NESTING = 64

_ATOMS = (str, int, float, bool, type(None))


class CallSyntaxError(ValueError):
    """Text that is not a single literal-only function call (the message says why)."""


@dataclass(frozen=True)
class Call:
    """A parsed tool call: a bare function name, positional and keyword literal arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def plain(self) -> bool:
        """True when every argument is an immutable scalar (no copy needed before a call)."""
        return all(type(v) in _ATOMS for v in self.args) and all(type(v) in _ATOMS for v in self.kwargs.values())

    def to_python(self) -> str:
        """Canonical python-call text, e.g. ``cd(folder='document')``."""
        parts = [repr(value) for value in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (tuples and sets become lists)."""
        return {"name": self.name, "args": list(self.args), "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Call":
        return cls(str(data["name"]), tuple(data.get("args", ())), dict(data.get("kwargs", {})))

    def __str__(self) -> str:
        return self.to_python()


def _literal(node: ast.expr, depth: int = 0) -> Any:
    if depth > MAX_NESTING:
        raise CallSyntaxError(f"argument nested deeper than {MAX_NESTING} levels")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, _ATOMS):
            return node.value
        raise CallSyntaxError(f"unsupported constant {type(node.value).__name__}")
    if isinstance(node, ast.List):
        return [_literal(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item, depth + 1) for item in node.elts)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise CallSyntaxError("'**' unpacking is not allowed in a dict argument")
        result = {}
        for key, value in zip(node.keys, node.values):
            parsed_key = _literal(key, depth + 1)  # type: ignore[arg-type]
            try:
                hash(parsed_key)
            except TypeError:
                raise CallSyntaxError("unhashable dict key") from None
            result[parsed_key] = _literal(value, depth + 1)
        return result
    if isinstance(node, ast.Set):
        items = [_literal(item, depth + 1) for item in node.elts]
        try:
            return set(items)
        except TypeError:
            raise CallSyntaxError("unhashable set element") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, depth + 1)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    raise CallSyntaxError(f"argument is not a literal: {type(node).__name__}")


def call_from_node(node: ast.expr) -> Call:
    """Turn one ``ast.Call`` node into a :class:`Call` (bare name, literal arguments only)."""
    if not isinstance(node, ast.Call):
        raise CallSyntaxError(f"expected a function call, got {type(node).__name__}")
    if not isinstance(node.func, ast.Name):
        raise CallSyntaxError("the callee must be a bare function name (no attributes or expressions)")
    args = []
    for arg in node.args:
        if isinstance(arg, ast.Starred):
            raise CallSyntaxError("'*' unpacking is not allowed")
        args.append(_literal(arg))
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise CallSyntaxError("'**' unpacking is not allowed")
        if keyword.arg in kwargs:
            raise CallSyntaxError(f"keyword argument repeated: {keyword.arg}")
        kwargs[keyword.arg] = _literal(keyword.value)
    return Call(node.func.id, tuple(args), kwargs)


def _parse_expression(text: str) -> ast.expr:
    if not isinstance(text, str):
        raise CallSyntaxError(f"call text must be a string, not {type(text).__name__}")
    if len(text) > MAX_CALL_TEXT:
        raise CallSyntaxError(f"call text longer than {MAX_CALL_TEXT} characters")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise CallSyntaxError(f"not valid python: {reason}") from None


@lru_cache(maxsize=1 << 16)
def _parse_one(text: str) -> Call:
    return call_from_node(_parse_expression(text))


def parse_python_call(text: str) -> Call:
    """Parse one call such as ``cd(folder='document')`` or ``sort('final_report.pdf')``.

    The result may be shared with other callers (it is cached): never mutate its arguments;
    the executor copies mutable arguments before a call.
    """
    if not isinstance(text, str):
        raise CallSyntaxError(f"call text must be a string, not {type(text).__name__}")
    return _parse_one(text)


def parse_python_calls(text: str) -> list[Call]:
    """Parse BFCL's python-list form ``[f(a=1), g(b=2)]`` (a single bare call is accepted)."""
    node = _parse_expression(text)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [call_from_node(item) for item in node.elts]
    return [call_from_node(node)]
