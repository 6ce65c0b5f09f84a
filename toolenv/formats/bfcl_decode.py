"""BFCL's decoding of model output, rule for rule, without evaluating anything.

``bfcl evaluate`` turns each raw step of a result file into *execution strings* (the calls its
engine then runs) with the model handler's ``decode_execute``: for prompting models the generic
python-list decoder, for function-calling models the ``{name: arguments}`` converter. A step
whose decoding fails, or that decodes to nothing, is skipped. This module reproduces what those
two decoders produce, so that toolenv scores model text as the official pipeline does:

Prompting (:func:`decode_prompting`)
    - backticks, newlines and spaces are stripped from both ends, and a missing ``[`` or ``]``
      is added; then quotes (``'``) are stripped from both ends;
    - the text must be one call or a list/tuple of calls; anything else fails the step;
    - a callee is its dotted name (``a.b.f`` stays ``a.b.f``);
    - **positional arguments are dropped** (``cd('docs')`` runs as ``cd()``); only keyword
      arguments are kept, and :attr:`Decoded.positional_dropped` counts the calls that lost some;
    - argument values: literals as they are (``...`` becomes the string ``"..."``); a bare
      name becomes its own text (``folder=docs`` → ``'docs'``); a unary operator on a constant
      always *negates* it (``+1`` → ``-1``, ``not True`` → ``-1``); arithmetic on literals is
      computed (BFCL evaluates it; we fold constants with bounds and refuse anything that is
      not plain arithmetic on literals); a call without keywords becomes its source text
      (``f(g(1))`` passes ``'g(1)'``); a call with keywords becomes a nested call (``dict(k=v)``
      the dict it builds); a subscript
      becomes its source text; lists, tuples and dicts are decoded element by element; any
      other expression (sets, f-strings, comparisons, attributes, lambdas, ...) fails the step;
    - each call is rendered back to text as BFCL does: values by ``repr``, except that a dict
      value whose values are all dicts is read as a nested call (its first key the function, an
      empty dict fails the step) and any other dict is written with its keys in quotes.

Function calling (:func:`decode_function_calling`)
    A step is a list of ``{name: arguments}`` dicts (or one dict); every key of every dict is a
    call, its arguments a dict or a JSON string holding one; each value is written with
    ``repr``. A step that is not of this shape fails.

The execution strings are then parsed by :func:`toolenv.calls.parse_python_call`, which accepts
literal arguments only: a string BFCL would run as a nested call, or whose value does not read
back (``inf``, a key with a quote), cannot run here and comes back as an error. BFCL runs the
nested call; that is the one place toolenv does not follow it, on purpose (model text is never
evaluated), and :attr:`Decoded.unrunnable` counts it.
"""

from __future__ import annotations

import ast
import json
import operator
from dataclasses import dataclass
from typing import Any, Callable

from toolenv.calls import MAX_CALL_TEXT, MAX_NESTING, Call, CallSyntaxError, parse_python_call


class BFCLDecodeError(ValueError):
    """A step that BFCL's decoder fails on (the official pipeline skips such a step)."""


@dataclass(frozen=True)
class Decoded:
    """One step as BFCL decodes it."""

    #: the execution strings, in order (what BFCL's engine runs)
    strings: tuple[str, ...]
    #: the calls that had positional arguments, which BFCL drops
    positional_dropped: int = 0

    def calls(self) -> tuple[list[Call], list[str]]:
        """The strings as :class:`Call` objects, and the strings that cannot run here."""
        calls, unrunnable = [], []
        for text in self.strings:
            try:
                calls.append(parse_python_call(text))
            except CallSyntaxError:
                unrunnable.append(text)
        return calls, unrunnable


# -- prompting ----------------------------------------------------------------------------------


def decode_prompting(text: str) -> Decoded:
    """BFCL's prompting decoder on one raw step (see the module docstring); raises
    :class:`BFCLDecodeError` where it fails."""
    if not isinstance(text, str):
        raise BFCLDecodeError(f"a prompting step is text, not {type(text).__name__}")
    if len(text) > MAX_CALL_TEXT:
        raise BFCLDecodeError(f"step longer than {MAX_CALL_TEXT} characters")
    body = text.strip("`\n ")
    if not body.startswith("["):
        body = "[" + body
    if not body.endswith("]"):
        body = body + "]"
    try:
        tree = ast.parse(body.strip().strip("'"), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise BFCLDecodeError(f"not valid python ({type(exc).__name__})") from None
    if isinstance(tree, ast.Call):
        nodes = [tree]
    elif isinstance(tree, (ast.List, ast.Tuple, ast.Set)):
        nodes = list(tree.elts)
    else:
        raise BFCLDecodeError(f"expected a list of calls, got {type(tree).__name__}")
    strings, dropped = [], 0
    for node in nodes:
        if not isinstance(node, ast.Call):
            raise BFCLDecodeError(f"a list element is not a call ({type(node).__name__})")
        name, arguments = _call(node, 0)
        dropped += bool(node.args)
        strings.append(_render(name, arguments))
    return Decoded(tuple(strings), dropped)


def _callee(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


class _NestedCall(dict):
    """A decoded call used as an argument value: ``{name: {keyword: value}}``."""


def _call(node: ast.Call, depth: int) -> tuple[str, dict[Any, Any]]:
    arguments: dict[Any, Any] = {}
    for keyword in node.keywords:  # positional arguments are dropped, as BFCL drops them
        arguments[keyword.arg] = _value(keyword.value, depth + 1)
    return _callee(node.func), arguments


def _value(node: ast.expr, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise BFCLDecodeError(f"argument nested deeper than {MAX_NESTING} levels")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        # BFCL negates the operand's constant whatever the operator (+1 -> -1, not True -> -1)
        if not isinstance(node.operand, ast.Constant):
            raise BFCLDecodeError("a unary operator on a non-constant")
        try:
            return -node.operand.value
        except TypeError:
            raise BFCLDecodeError("a unary operator on a non-number") from None
    if isinstance(node, ast.List):
        return [_value(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(item, depth + 1) for item in node.elts)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise BFCLDecodeError("'**' in a dict argument")
        return {_value(k, depth + 1): _value(v, depth + 1) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.BinOp):
        return _arithmetic(node, depth)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        name, arguments = _call(node, depth)
        return _NestedCall({name: arguments})
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise BFCLDecodeError(f"unsupported argument {type(node).__name__}")


# -- arithmetic: BFCL evaluates a BinOp's source; we fold literal arithmetic, bounded ------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
#: bounds that keep folding cheap (a model can write 9**9**9): result size and operand magnitude
_MAX_SEQUENCE = 100_000
_MAX_INT_BITS = 4096


def _arithmetic(node: ast.expr, depth: int) -> Any:
    """The value Python gives literal arithmetic (``1+2``, ``'a'*3``, ``-(2**3)``)."""
    if depth > MAX_NESTING:
        raise BFCLDecodeError("arithmetic nested too deeply")
    if isinstance(node, ast.Constant) and node.value is not Ellipsis:
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_arithmetic(item, depth + 1) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)], _arithmetic(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _arithmetic(node.left, depth + 1), _arithmetic(node.right, depth + 1)
        _bounded(type(node.op), left, right)
        return _checked(_BINARY[type(node.op)], left, right)
    # BFCL would evaluate names and calls here (builtins included); we evaluate nothing
    raise BFCLDecodeError(f"arithmetic on a {type(node).__name__}")


def _bounded(op: type[ast.operator], left: Any, right: Any) -> None:
    numbers = [v for v in (left, right) if isinstance(v, int)]
    if op is ast.Pow and isinstance(right, int) and isinstance(left, (int, float)) and abs(left) > 1:
        if right * max(abs(left), 2).bit_length() > _MAX_INT_BITS:
            raise BFCLDecodeError("arithmetic result too large")
    if op is ast.LShift and isinstance(right, int) and right > _MAX_INT_BITS:
        raise BFCLDecodeError("arithmetic result too large")
    if op is ast.Mult and any(isinstance(v, (str, bytes, list, tuple)) for v in (left, right)) and numbers:
        count = max(numbers)
        sequence = next(v for v in (left, right) if isinstance(v, (str, bytes, list, tuple)))
        if count * len(sequence) > _MAX_SEQUENCE:
            raise BFCLDecodeError("arithmetic result too large")


def _checked(function: Callable[..., Any], *operands: Any) -> Any:
    try:
        return function(*operands)
    except (TypeError, ValueError, ArithmeticError, MemoryError):
        raise BFCLDecodeError("arithmetic that Python refuses") from None


# -- rendering: what BFCL writes for each decoded call -------------------------------------------


def _render(name: str, arguments: dict[Any, Any]) -> str:
    return f"{name}({', '.join(f'{key}={_text(value)}' for key, value in arguments.items())})"


def _text(value: Any) -> str:
    if isinstance(value, _NestedCall) and next(iter(value)) == "dict":
        # ``dict(k=v)``: BFCL's engine runs Python's dict() (no backend has a tool of that
        # name), which builds exactly this literal; so does toolenv, without running anything
        return "{" + ", ".join(f"{k!r}: {_text(v)}" for k, v in value["dict"].items()) + "}"
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):  # read as a nested call
            if not value:
                raise BFCLDecodeError("an empty dict argument")
            name = next(iter(value))
            return f"{name}({', '.join(f'{k}={_text(v)}' for k, v in value[name].items())})"
        return "{" + ", ".join(f"'{k}': {_text(v)}" for k, v in value.items()) + "}"
    return repr(value)  # inf and nan give names that do not read back: such a call cannot run here


# -- function calling --------------------------------------------------------------------------


def decode_function_calling(step: Any) -> Decoded:
    """BFCL's converter for function-calling output: ``[{name: arguments}, ...]``."""
    items = [step] if isinstance(step, dict) else step
    if not isinstance(items, list):
        raise BFCLDecodeError(f"a function-calling step is a list of dicts, not {type(step).__name__}")
    strings = []
    for item in items:
        if not isinstance(item, dict):
            raise BFCLDecodeError("a function-calling entry is not a dict")
        for name, arguments in item.items():
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except (ValueError, RecursionError):
                    raise BFCLDecodeError("arguments are not valid JSON") from None
            if not isinstance(arguments, dict):
                raise BFCLDecodeError("arguments are not an object")
            strings.append(f"{name}({','.join(f'{k}={v!r}' for k, v in arguments.items())})")
    return Decoded(tuple(strings))


def decode_step(raw: Any, function_calling: bool) -> Decoded:
    """One result-file step as the handler kind decodes it (a function-calling handler's text
    reply fails its converter; a prompting handler's step is text); raises
    :class:`BFCLDecodeError` where BFCL fails."""
    return decode_function_calling(raw) if function_calling else decode_prompting(raw)
