"""Prompt styles: where the tools go, how their docs are written and how results are wrapped.

A :class:`PromptStyle` is a codec option (a codec still knows nothing about state). The default
style is every codec's own layout, byte for byte; the other values are the prompt-template
variants that format-OOD test sets use:

- ``docs``: ``default`` (the codec's own listing), ``json`` (an indented JSON list of the
  function schemas), ``yaml`` (YAML-like text), ``python`` (Python signatures with docstrings);
- ``tools_in``: ``system`` (the codec's system prompt), ``user`` (the system prompt, tools
  included, moves to the start of the first user message; the system message becomes a short
  neutral one);
- ``results``: ``default`` (the codec's own wrapping), ``json`` (a JSON list of
  ``{"function", "output"}``), ``plain`` (``Output of f:`` blocks), ``tagged``
  (``<output function="f">…</output>``).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

DOC_STYLES = ("default", "json", "yaml", "python")
PLACEMENTS = ("system", "user")
RESULT_STYLES = ("default", "json", "plain", "tagged")
#: the system message when the tools move into the first user message
NEUTRAL_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class PromptStyle:
    docs: str = "default"
    tools_in: str = "system"
    results: str = "default"

    def __post_init__(self) -> None:
        for value, valid, what in (
            (self.docs, DOC_STYLES, "docs"),
            (self.tools_in, PLACEMENTS, "tools_in"),
            (self.results, RESULT_STYLES, "results"),
        ):
            if value not in valid:
                raise ValueError(f"unknown prompt style {what}={value!r}; valid: {', '.join(valid)}")

    @property
    def is_default(self) -> bool:
        return self == PromptStyle()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "PromptStyle":
        """The style named in a variant's format options (other keys are ignored)."""
        return cls(**{key: str(options[key]) for key in ("docs", "tools_in", "results") if key in options})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "float": "float",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "tuple": "tuple",
    "dict": "dict",
    "object": "dict",
    "any": "Any",
    "null": "None",
}


def render_docs(functions: Sequence[Mapping[str, Any]], style: str) -> str:
    """Function schemas (``{"name", "description", "parameters"}``) as text in a doc style."""
    if style == "json":
        return json.dumps(list(functions), ensure_ascii=False, indent=2)
    if style == "yaml":
        return "\n".join(_yaml_doc(f) for f in functions)
    if style == "python":
        return "\n\n".join(_python_doc(f) for f in functions)
    raise ValueError(f"no listing for docs style {style!r}")


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _yaml_doc(function: Mapping[str, Any]) -> str:
    lines = [f"- name: {function['name']}", f"  description: {_scalar(function.get('description', ''))}"]
    parameters = function.get("parameters", {}) or {}
    properties = parameters.get("properties", {}) or {}
    required = set(parameters.get("required", []) or [])
    if properties:
        lines.append("  parameters:")
    for name, schema in properties.items():
        lines.append(f"    {name}:")
        lines.append(f"      type: {schema.get('type', 'any')}")
        lines.append(f"      required: {'true' if name in required else 'false'}")
        if schema.get("description"):
            lines.append(f"      description: {_scalar(schema['description'])}")
        if "enum" in schema:
            lines.append(f"      enum: {_scalar(schema['enum'])}")
        if "default" in schema:
            lines.append(f"      default: {_scalar(schema['default'])}")
    return "\n".join(lines)


def _python_doc(function: Mapping[str, Any]) -> str:
    parameters = function.get("parameters", {}) or {}
    properties = parameters.get("properties", {}) or {}
    required = set(parameters.get("required", []) or [])
    args, notes = [], []
    for name, schema in properties.items():
        kind = schema.get("type", "any")
        hint = _PY_TYPES.get(kind, "Any") if isinstance(kind, str) else "Any"
        args.append(f"{name}: {hint}" if name in required else f"{name}: {hint} = {_py_default(schema)}")
        note = f"        {name}: {schema.get('description', '')}".rstrip()
        if "enum" in schema:
            note += f" One of {_scalar(schema['enum'])}."
        notes.append(note)
    ordered = [a for a in args if "=" not in a] + [a for a in args if "=" in a]
    doc = function.get("description", "")
    body = f'    """{doc}' + ("\n\n    Args:\n" + "\n".join(notes) if notes else "") + '\n    """'
    return f"def {function['name']}({', '.join(ordered)}):\n{body}"


def _py_default(schema: Mapping[str, Any]) -> str:
    value = schema.get("default")
    return repr(value) if isinstance(value, (str, int, float, bool, type(None))) else "None"


def wrap_results(names: Sequence[str], results: Sequence[str], style: str) -> str:
    """A step's results as one observation text in a result style (not ``default``)."""
    if style == "json":
        return json.dumps([{"function": n, "output": r} for n, r in zip(names, results)], ensure_ascii=False)
    if style == "plain":
        return "\n\n".join(f"Output of {n or 'an undecodable call'}:\n{r}" for n, r in zip(names, results))
    if style == "tagged":
        return "\n".join(
            f'<output function="{html.escape(n)}">{html.escape(r, quote=False)}</output>'
            for n, r in zip(names, results)
        )
    raise ValueError(f"no wrapping for results style {style!r}")
