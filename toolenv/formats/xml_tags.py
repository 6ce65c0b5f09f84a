"""XML-tagged calls, in the style of BFCL's concise XML format::

    <functions><function name="cd"><param name="folder" type="string">document</param></function></functions>

Strings are written as escaped text; every other value as JSON with its type (integer, float,
boolean, null, array, dict). The wrapper ``<functions>`` is optional when parsing. Decoding uses
regular expressions over the text (no XML parser, so no entity expansion). A message with no
``<function`` tag is a reply and ends the turn.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.formats.base import Codec, ParseResult, ToolSpec, json_arguments

_FUNCTION = re.compile(r'<function\s+name="([^"]*)"\s*(/>|>(.*?)</function>)', re.DOTALL)
_PARAM = re.compile(r'<param\s+name="([^"]*)"(?:\s+type="([^"]*)")?\s*(?:/>|>(.*?)</param>)', re.DOTALL)
_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    type(None): "null",
    list: "array",
    dict: "dict",
}


def _encode(value: Any) -> tuple[str, str]:
    kind = _TYPES.get(type(value))
    if kind is None:
        raise ValueError(f"no XML form for a {type(value).__name__} value")
    if kind == "string":
        return kind, html.escape(value, quote=False)
    return kind, html.escape(json.dumps(value, ensure_ascii=False), quote=False)


def _decode(kind: str | None, raw: str) -> Any:
    text = html.unescape(raw)
    if kind in (None, "string", "str"):
        return text
    value = json.loads(text)
    expected = {
        "integer": int,
        "float": (int, float),
        "boolean": bool,
        "null": type(None),
        "array": list,
        "tuple": list,
        "dict": dict,
        "object": dict,
        "number": (int, float),
    }.get(kind)
    if expected is None:
        raise ValueError(f"unknown parameter type {kind!r}")
    if not isinstance(value, expected) or (kind == "integer" and isinstance(value, bool)):
        raise ValueError(f"value {text[:40]!r} is not of type {kind}")
    return value


class XMLCodec(Codec):
    name = "xml"
    call_opener = "<function"

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        listing = self.styled_listing(tools)
        if listing is None:
            listing = "\n".join(json.dumps(tool.openai()["function"], ensure_ascii=False) for tool in tools)
        return (
            "You are an expert in composing function calls. Complete the user's requests by calling "
            "the functions below.\n\n"
            "To call functions, reply with only this XML:\n"
            '<functions><function name="func_name"><param name="param1" type="type1">value1</param>'
            "…</function>…</functions>\n"
            "Parameter types are string, integer, float, boolean, array, dict or null; write strings "
            "as plain text and other values as JSON. When no more calls are needed, answer in plain "
            f"text.\n\nFunctions (JSON Schema):\n{listing}"
        )

    def render_calls(self, calls: Sequence[Call]) -> str:
        parts = []
        for call in calls:
            params = "".join(
                f'<param name="{key}" type="{kind}">{text}</param>'
                for key, (kind, text) in ((k, _encode(v)) for k, v in json_arguments(call).items())
            )
            parts.append(f'<function name="{call.name}">{params}</function>')
        return "<functions>" + "".join(parts) + "</functions>"

    def parse_text(self, output: Any) -> ParseResult:
        if not isinstance(output, str):
            return ParseResult(errors=("the output is not text",))
        if "<function" not in output:
            return ParseResult(outside_text=output.strip())
        calls, errors = [], []
        for match in _FUNCTION.finditer(output):
            name, body = match.group(1), match.group(3) or ""
            try:
                if not name.isidentifier():
                    raise ValueError(f"bad function name {name!r}")
                kwargs: dict[str, Any] = {}
                for param in _PARAM.finditer(body):
                    key = param.group(1)
                    if not key.isidentifier() or key in kwargs:
                        raise ValueError(f"bad or repeated parameter name {key!r}")
                    kwargs[key] = _decode(param.group(2), param.group(3) or "")
                calls.append(Call(name, (), kwargs))
            except (ValueError, RecursionError) as exc:
                errors.append(f"{exc}: {match.group(0)[:200]}")
        if not calls and not errors:
            errors.append("a '<function' tag without a complete <function name=…>…</function> element")
        outside = _FUNCTION.sub("", output).replace("<functions>", "").replace("</functions>", "").strip()
        return ParseResult(tuple(calls), tuple(errors), True, outside)

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return "\n".join(
            f'<result name="{call.name if call is not None else ""}">{html.escape(text, quote=False)}</result>'
            for call, text in zip(calls, results)
        )
