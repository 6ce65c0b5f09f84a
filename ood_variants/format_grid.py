"""BFCL V4's format-sensitivity grid, as OOD format variants of the multi-turn tasks.

BFCL V4 measures prompt-format sensitivity with configuration strings such as
``ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=plaintext&style=classic``: the
return format the model is asked for, whether the calls go inside a tag, how the tools are
documented, the prompt's layout and its wording. The reference runs its 26 configurations on
200 single-turn entries only; here every configuration is a format variant of any multi-turn
task (spec token ``bfcl_format:CONFIG``, or the configuration string alone).

What comes from the official distribution, at run time and without executing it
(:func:`envs._official.distribution`, sources read through :mod:`ast`):

- the prompt templates (persona, task, tool-call, multi-turn and tool sections of each style,
  the plaintext and markdown layouts, the example of each return format and its type
  sentence): ``bfcl_eval/constants/default_prompts.py``, byte for byte;
- the tool-call tag, taken from the tagged tool-call template (``<TOOLCALL>…</TOOLCALL>``);
- the list of the official configurations (:func:`official_configs`):
  ``get_all_format_sensitivity_configs`` in ``bfcl_eval/utils.py``, read by a small reader of
  that function's literal lists, loops and f-strings (nothing is run);
- the grammar (:func:`official_grammar`): the pattern in ``parse_prompt_variation_params`` of
  ``bfcl_eval/model_handler/utils.py``; it must equal :data:`GRAMMAR`, the grammar this module
  parses and renders, or the release is refused in one line.

What is toolenv's own code: the parser of the configuration strings (:func:`parse_config`),
the three tool-doc renderers (``json``, ``xml``, ``python``; equal byte for byte to the
reference's, tests/test_format_grid.py compares them with bfcl-eval's ``formulate_system_prompt``),
the decoders of the four return formats and the renderers the expert uses. Model output is
decoded as BFCL's single-turn AST decoder reads it, then turned into calls by BFCL's
execution-string rule (:mod:`toolenv.formats.bfcl_decode`), with ``ast`` and ``json`` only:

- ``python``: BFCL's python-list decoding (positional arguments dropped, as ever);
- ``json``: the first ``[{`` … JSON list of ``{"function": name, "parameters": {…}}``
  objects (a missing ``[`` or ``]`` added first, entries that are not objects skipped);
- ``verbose_xml`` and ``concise_xml``: the first ``<functions>…</functions>`` element, with
  ``xml.etree`` (document type declarations refused, so no entity can expand); each value typed
  by its ``type`` attribute: ``string`` as written, ``integer``/``float`` as numbers,
  ``boolean`` true when it reads ``true`` (any case), ``null`` as None, ``array``/``tuple``/
  ``dict``/``object`` as Python literals (``ast.literal_eval``), any other type as text;
  concise values are stripped of surrounding whitespace, as in BFCL;
- ``tool_call_tag=True``: the text between the first ``<TOOLCALL>`` and ``</TOOLCALL>`` is
  decoded; without the tag the message is a plain reply.

A message that does not decode is a plain reply and ends the turn, whatever the return format,
as BFCL's multi-turn loop treats any undecodable response; so formats differ in syntax only.
Results and the miss_func reveal come back as BFCL's prompting handlers send them (the python
format's: the ``repr`` of a list of ``tool`` messages; the held-out docs as a Python list).

The codecs are registered in :data:`toolenv.formats.CODECS` under the configuration string
when a variant asks for one (:func:`register_codec`), so the environment's ``call_format``
lookup finds them; toolenv itself knows nothing of this module.
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Mapping, Sequence

from envs._official import DEFAULT_VERSION, DataError, distribution, official_literal, resolve_version
from toolenv.calls import MAX_CALL_TEXT, Call
from toolenv.formats import CODECS
from toolenv.formats.base import ParseResult, ToolSpec, json_arguments
from toolenv.formats.bfcl_decode import Decoded, _render
from toolenv.formats.python_list import PYTHON_HINT, UNRUNNABLE, PythonListCodec

#: the grammar this module parses and renders: each key, in the official order, and its values
GRAMMAR: dict[str, tuple[str, ...]] = {
    "ret_fmt": ("python", "json", "verbose_xml", "concise_xml"),
    "tool_call_tag": ("True", "False"),
    "func_doc_fmt": ("python", "xml", "json"),
    "prompt_fmt": ("plaintext", "markdown"),
    "style": ("classic", "experimental"),
}
#: the spec transform's name (``bfcl_format:CONFIG``; the configuration alone also works)
TRANSFORM = "bfcl_format"

PROMPTS_FILE = "constants/default_prompts.py"
GRAMMAR_FILE = "model_handler/utils.py"
GRAMMAR_FUNCTION = "parse_prompt_variation_params"
CONFIGS_FILE = "utils.py"
CONFIGS_FUNCTION = "get_all_format_sensitivity_configs"


def grammar_text() -> str:
    """The grammar in one line: ``ret_fmt=python|json|…&tool_call_tag=True|False&…``."""
    return "&".join(f"{key}={'|'.join(values)}" for key, values in GRAMMAR.items())


def looks_like_config(token: str) -> bool:
    """A spec token that is meant as a configuration string (it assigns a key)."""
    return "=" in token


# -- configurations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatConfig:
    """One point of the grid (see the module docstring)."""

    ret_fmt: str
    tool_call_tag: bool
    func_doc_fmt: str
    prompt_fmt: str
    style: str

    @property
    def text(self) -> str:
        """The canonical configuration string (keys in the official order)."""
        values = {**self.__dict__, "tool_call_tag": str(self.tool_call_tag)}
        return "&".join(f"{key}={values[key]}" for key in GRAMMAR)


def _bad(text: str, reason: str) -> ValueError:
    return ValueError(f"bad format configuration {text!r}: {reason}; grammar: {grammar_text()}")


def _pairs(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a configuration string, each key once."""
    pairs: dict[str, str] = {}
    for part in text.split("&"):
        key, equals, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key:
            raise _bad(text, f"{part!r} is not key=value")
        if key not in GRAMMAR:
            raise _bad(text, f"unknown key {key!r}")
        if key in pairs:
            raise _bad(text, f"{key} given twice")
        if value not in GRAMMAR[key]:
            raise _bad(text, f"{key}={value!r} is not one of {'|'.join(GRAMMAR[key])}")
        pairs[key] = value
    return pairs


@lru_cache(maxsize=256)
def parse_config(text: str) -> FormatConfig:
    """A configuration string as a :class:`FormatConfig` (keys in any order, each once, all
    five present); a one-line ``ValueError`` that states the grammar otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(str(text), "empty")
    pairs = _pairs(text)
    missing = [key for key in GRAMMAR if key not in pairs]
    if missing:
        raise _bad(text, f"missing {', '.join(missing)}")
    return FormatConfig(
        pairs["ret_fmt"], pairs["tool_call_tag"] == "True", pairs["func_doc_fmt"], pairs["prompt_fmt"], pairs["style"]
    )


def normalize_config(text: str) -> str:
    """The canonical spelling of a configuration string (``parse_config(text).text``)."""
    return parse_config(text).text


# -- what the official distribution holds -----------------------------------------------------


def _missing(version: str, what: str) -> DataError:
    return DataError(
        f"bfcl-eval=={version} has no format-sensitivity grid ({what}); "
        f"use a release that has one (--data-version {DEFAULT_VERSION})"
    )


@lru_cache(maxsize=8)
def _function(relative: str, name: str, version: str) -> ast.FunctionDef:
    """A module-level function's syntax tree in an official source (parsed, never run)."""
    tree = ast.parse(distribution(version).read_text(relative), filename=relative)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise _missing(version, f"bfcl_eval/{relative} defines no {name}")


def grammar_from_pattern(pattern: str) -> dict[str, tuple[str, ...]]:
    """``{key: values}`` from a pattern of ``key=(?P<group>a|b)`` pieces, in order."""
    found = re.findall(r"(\w+)=\(\?P<\w+>([\w|]+)\)", pattern)
    return {key: tuple(values.split("|")) for key, values in found}


@lru_cache(maxsize=4)
def official_grammar(version: str | None = None) -> dict[str, tuple[str, ...]]:
    """The grammar a release's own parser accepts, read from its pattern (see module docstring)."""
    release = resolve_version(version)
    function = _function(GRAMMAR_FILE, GRAMMAR_FUNCTION, release)
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "compile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            grammar = grammar_from_pattern(node.args[0].value)
            if grammar:
                return grammar
    raise _missing(release, f"no configuration pattern in {GRAMMAR_FUNCTION}")


class _ConfigListReader:
    """Reads the list a function builds from literal lists, ``for`` loops over them and
    ``append`` of f-strings (the shape of ``get_all_format_sensitivity_configs``); anything
    else is refused, so nothing of the official code ever runs."""

    def __init__(self, release: str) -> None:
        self.release = release
        self.names: dict[str, Any] = {}
        self.items: list[str] = []

    def run(self, body: Sequence[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.names[node.targets[0].id] = ast.literal_eval(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name):
                for value in self.names[node.iter.id]:
                    self.names[node.target.id] = value
                    self.run(node.body)
            elif self._is_append(node):
                self.items.append(self._string(node.value.args[0]))  # type: ignore[attr-defined]
            elif not isinstance(node, ast.Return):
                raise _missing(self.release, f"{CONFIGS_FUNCTION} has a statement this reader does not know")

    @staticmethod
    def _is_append(node: ast.stmt) -> bool:
        call = node.value if isinstance(node, ast.Expr) else None
        return (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "append"
            and len(call.args) == 1
        )

    def _string(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
                    parts.append(str(self.names[value.value.id]))
                else:
                    raise _missing(self.release, f"{CONFIGS_FUNCTION} formats something other than a name")
            return "".join(parts)
        raise _missing(self.release, f"{CONFIGS_FUNCTION} appends something other than a string")


@lru_cache(maxsize=4)
def official_configs(version: str | None = None) -> tuple[str, ...]:
    """The release's format-sensitivity configurations, in its order (26 in both pinned
    releases), each checked against :data:`GRAMMAR`."""
    release = resolve_version(version)
    reader = _ConfigListReader(release)
    try:
        reader.run(_function(CONFIGS_FILE, CONFIGS_FUNCTION, release).body)
    except (KeyError, ValueError, TypeError, SyntaxError) as exc:
        if isinstance(exc, DataError):
            raise
        raise _missing(release, f"{CONFIGS_FUNCTION} could not be read ({type(exc).__name__})") from None
    return tuple(normalize_config(item) for item in reader.items)


@dataclass(frozen=True)
class Templates:
    """The official prompt texts of one release (read at run time, byte for byte)."""

    output_formats: Mapping[str, str]
    param_types: Mapping[str, str]
    styles: Mapping[str, Mapping[str, str]]
    layouts: Mapping[str, str]

    def tag(self) -> tuple[str, str]:
        """The tool-call tag's opening and closing text, from the tagged tool-call template."""
        match = re.search(r"<(\w+)>\{output_format\}</\1>", self.styles["classic"]["tool_call_with_tag"])
        if match is None:
            raise DataError("the official tagged tool-call template has no <TAG>{output_format}</TAG>")
        return f"<{match.group(1)}>", f"</{match.group(1)}>"


@lru_cache(maxsize=4)
def templates(version: str | None = None) -> Templates:
    """The release's prompt templates; a one-line error for a release without the grid, or
    whose grammar is not :data:`GRAMMAR`."""
    release = resolve_version(version)
    try:
        found = Templates(
            official_literal(PROMPTS_FILE, "OUTPUT_FORMAT_MAPPING", release),
            official_literal(PROMPTS_FILE, "PARAM_TYPE_MAPPING", release),
            official_literal(PROMPTS_FILE, "PROMPT_STYLE_TEMPLATES", release),
            official_literal(PROMPTS_FILE, "PROMPT_TEMPLATE_MAPPING", release),
        )
    except DataError as exc:
        raise _missing(release, str(exc).rstrip(".")) from None
    official = official_grammar(release)
    if official != GRAMMAR:
        raise DataError(
            f"bfcl-eval=={release}'s format grammar is {'&'.join(f'{k}={chr(124).join(v)}' for k, v in official.items())}, "
            f"not the supported {grammar_text()}"
        )
    return found


# -- tool docs --------------------------------------------------------------------------------


def hinted_docs(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The offered docs as BFCL's prompting handlers list them: the "Python 3 syntax" note
    appended to each description (as the default python format does)."""
    return [{**tool.doc, "description": tool.doc.get("description", "") + PYTHON_HINT} for tool in tools]


def render_function_docs(docs: Sequence[Mapping[str, Any]], doc_format: str) -> str:
    """The docs as the ``func_doc_fmt`` writes them (``json``, ``xml`` or ``python``)."""
    if doc_format == "json":
        return json.dumps(list(docs), indent=4)
    if doc_format == "xml":
        return "\n".join(_xml_function(doc) for doc in docs)
    if doc_format == "python":
        return "\n\n".join(part for doc in docs for part in (_python_function(doc), "\n"))
    raise ValueError(f"no renderer for func_doc_fmt={doc_format!r}; grammar: {grammar_text()}")


def _xml_function(doc: Mapping[str, Any]) -> str:
    parameters = doc["parameters"]
    required = parameters.get("required")
    body = "".join(_xml_param(name, schema, required, 2) for name, schema in parameters.get("properties", {}).items())
    return (
        f'<function name="{doc["name"]}">\n  <desc>{doc.get("description", "")}</desc>\n'
        f"  <params>\n{body}  </params>\n</function>\n"
    )


def _xml_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "string")
    items = schema.get("items")
    if isinstance(items, Mapping) and "type" in items:
        return f"{kind}[{items['type']}]"
    if "additionalProperties" in schema:
        return f"{kind}[{schema['additionalProperties'].get('type', 'string')}]"
    return str(kind)


def _xml_param(name: str, schema: Mapping[str, Any], required: Sequence[str] | None, level: int) -> str:
    """One parameter (and its nested ones): every parameter is required when no list says."""
    pad = "  " * level
    flag = "true" if required is None or name in required else "false"
    attributes = f'name="{name}" type="{_xml_type(schema)}" required="{flag}"'
    if "default" in schema:
        attributes += f' default="{schema["default"]!r}"'
    lines = [f"{pad}<param {attributes.replace(',', '')}>\n", f"{pad}  <desc>{_described(schema)}</desc>\n"]
    if "properties" in schema:
        nested = schema.get("required")
        lines.append(f"{pad}  <params>\n")
        lines += [_xml_param(key, value, nested, level + 2) for key, value in schema["properties"].items()]
        lines.append(f"{pad}  </params>\n")
    lines.append(f"{pad}</param>\n")
    return "".join(lines)


def _described(schema: Mapping[str, Any]) -> str:
    """A parameter's description, with its enum values when it has any."""
    text = schema.get("description", "")
    return text + f" Enum values: {schema['enum']}." if "enum" in schema else text


_PY_PRIMITIVES = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"}


def _python_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "string")
    if kind in _PY_PRIMITIVES:
        return _PY_PRIMITIVES[kind]
    if kind in ("array", "list", "tuple") and "items" in schema:
        return f"list[{_python_type(schema['items'])}]"
    if kind in ("object", "dict"):
        extra = schema.get("additionalProperties")
        return "dict" if "additionalProperties" not in schema else f"dict[str, {_python_type(extra)}]"
    return kind


def _python_param(name: str, schema: Mapping[str, Any], depth: int) -> list[str]:
    default = f", default={schema['default']!r}" if "default" in schema else ""
    lines = [f"{' ' * (8 + 4 * depth)}{name} ({_python_type(schema)}{default}): {_described(schema)}\n"]
    for key, value in (schema.get("properties") or {}).items():
        lines += _python_param(key, value, depth + 1)
    return lines


def _python_function(doc: Mapping[str, Any]) -> str:
    properties = doc.get("parameters", {}).get("properties", {})
    lines = [f"# Function: {doc['name']}\n", '    """\n', f"    {doc.get('description', '')}\n\n"]
    if properties:
        lines.append("    Args:\n")
        lines += [line for key, value in properties.items() for line in _python_param(key, value, 0)]
    return "".join(lines) + '    """\n'


def system_prompt(
    config: FormatConfig,
    docs: Sequence[Mapping[str, Any]],
    version: str | None = None,
    listing: tuple[str, str] | None = None,
) -> str:
    """The system prompt of a configuration for these docs, assembled from the official
    templates as BFCL assembles it; ``listing`` = ``(format name, text)`` replaces the docs
    rendered in ``func_doc_fmt`` (a ``doc_style`` composed with the configuration)."""
    texts = templates(version)
    if listing is None:
        listing = (config.func_doc_fmt, render_function_docs(docs, config.func_doc_fmt))
    style = texts.styles[config.style]
    call_template = style["tool_call_with_tag" if config.tool_call_tag else "tool_call_no_tag"]
    return texts.layouts[config.prompt_fmt].format(
        persona=style["persona"],
        task=style["task"],
        tool_call_format=call_template.format(
            output_format=texts.output_formats[config.ret_fmt], param_types=texts.param_types[config.ret_fmt]
        ),
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(format=listing[0], functions=listing[1]),
    )


# -- decoding ---------------------------------------------------------------------------------


class GridDecodeError(ValueError):
    """A message that does not decode in its return format (it is a plain reply)."""


def _bracketed(text: str) -> str:
    """BFCL's prompting pre-step: backticks, newlines and spaces stripped, ``[``/``]`` added."""
    body = text.strip("`\n ")
    return ("" if body.startswith("[") else "[") + body + ("" if body.endswith("]") else "]")


def decode_json(text: str) -> list[dict[str, dict[str, Any]]]:
    """``[{name: arguments}]`` from the first JSON list of ``{"function", "parameters"}``."""
    body = _bracketed(text)
    start = re.search(r"\[\s*\{", body)
    try:
        value = json.JSONDecoder().raw_decode(body, start.start())[0] if start else json.loads(body)
    except (ValueError, RecursionError):
        raise GridDecodeError("not a JSON list of calls") from None
    if not isinstance(value, list):
        raise GridDecodeError("not a JSON list of calls")
    calls = []
    for item in value:
        if not isinstance(item, dict):
            continue  # BFCL skips entries that are not objects
        name, arguments = item.get("function"), item.get("parameters")
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise GridDecodeError("an entry without a 'function' name and 'parameters' object")
        calls.append({name: arguments})
    return calls


def _typed(raw: str, kind: str) -> Any:
    """An XML parameter value by its ``type`` attribute (see the module docstring)."""
    if kind == "integer":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "boolean":
        return raw.lower() == "true"
    if kind == "null":
        return None
    if kind in ("array", "tuple", "object", "dict"):
        return ast.literal_eval(raw)
    return raw  # "string", and any other type, as written


def decode_xml(text: str, verbose: bool) -> list[dict[str, dict[str, Any]]]:
    """``[{name: arguments}]`` from the first ``<functions>…</functions>`` element."""
    match = re.search(r"<functions>(.*?)</functions>", text, re.DOTALL)
    if match is None:
        raise GridDecodeError("no <functions> element")
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", match.group(0), re.IGNORECASE):
        raise GridDecodeError("document type declarations are refused")
    try:
        root = ElementTree.fromstring(match.group(0))
        return [{item.attrib["name"]: _xml_arguments(item, verbose)} for item in root.findall("function")]
    except (ElementTree.ParseError, KeyError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise GridDecodeError("malformed XML calls") from None


def _xml_arguments(function: ElementTree.Element, verbose: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if verbose:
        container = function.find("params")
        for param in (container if container is not None else function).findall("param"):
            arguments[param.attrib["name"]] = _typed(param.attrib.get("value", ""), param.attrib.get("type", "string"))
    else:
        for param in function.findall("param"):
            arguments[param.attrib["name"]] = _typed((param.text or "").strip(), param.attrib.get("type", "string"))
    return arguments


# -- rendering (the expert's calls in a return format) ----------------------------------------

_XML_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    type(None): "null",
    list: "array",
    tuple: "tuple",
    dict: "dict",
}


def _xml_value(value: Any) -> tuple[str, str]:
    """A value's type attribute and text: containers as Python literals, booleans lower case."""
    kind = _XML_TYPES.get(type(value))
    if kind is None:
        raise ValueError(f"no XML form for a {type(value).__name__} value")
    if kind == "boolean":
        return kind, "true" if value else "false"
    if kind == "null":
        return kind, ""
    return kind, value if kind == "string" else repr(value)


def _escape(text: str, attribute: bool) -> str:
    """XML escapes; in an attribute also quotes and the whitespace attribute values would lose."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def render_xml(calls: Sequence[Call], verbose: bool) -> str:
    parts = []
    for call in calls:
        params = []
        for key, value in json_arguments(call).items():
            kind, text = _xml_value(value)
            if verbose:
                params.append(f'<param name="{key}" value="{_escape(text, True)}" type="{kind}"/>')
            else:
                params.append(f'<param name="{key}" type="{kind}">{_escape(text, False)}</param>')
        inner = "<params>" + "".join(params) + "</params>" if verbose else "".join(params)
        parts.append(f'<function name="{call.name}">{inner}</function>')
    return "<functions>" + "".join(parts) + "</functions>"


def render_json(calls: Sequence[Call]) -> str:
    items = [{"function": call.name, "parameters": json_arguments(call)} for call in calls]
    return "```json\n" + json.dumps(items) + "\n```"


# -- the codec --------------------------------------------------------------------------------


class FormatGridCodec(PythonListCodec):
    """The codec of one configuration (a subclass per configuration: :func:`codec_class`).

    System prompt from the official templates; calls parsed and rendered in the configuration's
    return format; results and reveals as the python format sends them (BFCL's prompting)."""

    #: the configuration (set on each subclass by :func:`codec_class`)
    config: ClassVar[FormatConfig]

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        styled = self.styled_listing(tools)  # a doc_style transform in the spec replaces func_doc_fmt's listing
        listing = None if styled is None else (self.style.docs, styled)
        return system_prompt(self.config, hinted_docs(tools), listing=listing)

    def render_calls(self, calls: Sequence[Call]) -> str:
        ret_fmt = self.config.ret_fmt
        if ret_fmt == "python":
            body = super().render_calls(calls)
        elif ret_fmt == "json":
            body = render_json(calls)
        else:
            body = render_xml(calls, ret_fmt == "verbose_xml")
        if not self.config.tool_call_tag:
            return body
        opening, closing = templates().tag()
        return opening + body + closing

    def parse_text(self, output: Any) -> ParseResult:
        if not isinstance(output, str):
            return ParseResult(errors=("the output is not text",))
        if len(output) > MAX_CALL_TEXT:
            return ParseResult(outside_text=output.strip())
        body, outside = output, ""
        if self.config.tool_call_tag:
            opening, closing = templates().tag()
            match = re.search(re.escape(opening) + "(.*?)" + re.escape(closing), output, re.DOTALL)
            if match is None:
                return ParseResult(outside_text=output.strip())
            body, outside = match.group(1).strip(), (output[: match.start()] + output[match.end() :]).strip()
        parsed = self._parse_body(body)
        if parsed is None:  # does not decode: a plain reply, which ends the turn
            return ParseResult(outside_text=output.strip())
        if not parsed.attempted:  # nothing to call ("[]"): the turn ends
            return parsed
        return ParseResult(
            parsed.calls,
            parsed.errors,
            True,
            outside,
            positional_dropped=parsed.positional_dropped,
            unrunnable=parsed.unrunnable,
        )

    def _parse_body(self, body: str) -> ParseResult | None:
        """The calls in the return format's text; ``None`` when it does not decode."""
        ret_fmt = self.config.ret_fmt
        if ret_fmt == "python":
            parsed = super().parse_text(body)
            return None if not parsed.attempted and parsed.outside_text else parsed
        try:
            decoded = decode_json(body) if ret_fmt == "json" else decode_xml(body, ret_fmt == "verbose_xml")
        except GridDecodeError:
            return None
        return executed(decoded)

    def __reduce__(self) -> tuple[Any, ...]:
        # the classes are made at run time: rebuild one from its configuration (pickle, copy)
        return (make_codec, (self.config.text, self.style, self.keep_positional))


def executed(decoded: Sequence[Mapping[str, Mapping[str, Any]]]) -> ParseResult:
    """Decoded ``{name: arguments}`` calls as BFCL's execution strings make them run (a value
    that reads as a nested call, or does not read back, is an unrunnable error)."""
    strings = [_render(name, dict(arguments)) for item in decoded for name, arguments in item.items()]
    if not strings:
        return ParseResult()  # "[]" ends the turn
    calls, unrunnable = Decoded(tuple(strings)).calls()
    errors = tuple(UNRUNNABLE.format(text=text) for text in unrunnable)
    return ParseResult(tuple(calls), errors, True, "", unrunnable=tuple(unrunnable))


def _opener(config: FormatConfig) -> str:
    if config.tool_call_tag:
        return templates().tag()[0]
    return {"python": "[", "json": "```json"}.get(config.ret_fmt, "<functions>")


@lru_cache(maxsize=None)
def codec_class(text: str) -> type[FormatGridCodec]:
    """The codec class of a configuration, named by its canonical string."""
    config = parse_config(text)
    attributes = {"name": config.text, "config": config, "call_opener": _opener(config)}
    return type(f"FormatGridCodec[{config.text}]", (FormatGridCodec,), attributes)


def make_codec(text: str, style: Any = None, keep_positional: bool = False) -> FormatGridCodec:
    """A configuration's codec instance (registering it)."""
    return codec_class(parse_config(register_codec(text)).text)(style, keep_positional)


def register_codec(text: str, version: str | None = None) -> str:
    """Make a configuration's codec findable by ``toolenv.formats.get_codec`` (the
    environment's call-format lookup); returns its call-format name. The release's templates
    are read first, so a release without the grid fails here, in one line."""
    templates(version)
    cls = codec_class(normalize_config(text))
    CODECS.setdefault(cls.name, cls)
    return cls.name


def register_codecs(version: str | None = None) -> tuple[str, ...]:
    """Register every official configuration's codec (e.g. before loading an exported task
    file of grid variants in a process that built none of them)."""
    return tuple(register_codec(text, version) for text in official_configs(version))


def bfcl_format(draft: Any, rng: Any, option: str) -> None:
    """The transform: the variant's call format becomes the configuration's codec."""
    draft.format["call_format"] = register_codec(option, draft.base.release)
