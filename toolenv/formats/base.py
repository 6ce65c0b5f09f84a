"""What a call format (codec) is: tools → system prompt, model text ⇄ calls, results → text.

A codec knows nothing about state: it renders and parses. The environment decides what a parse
means for the episode: a message in which the codec found tool-call structure is a *tool step*
(its calls run, its malformed parts come back as error results); any other message ends the
user turn, as in BFCL.

Message dicts
    Every codec accepts, besides text, an OpenAI-style assistant message dict
    (``{"role": "assistant", "content": …, "tool_calls": [{"id", "type": "function",
    "function": {"name", "arguments": <JSON string or object>}}]}``), the form an
    OpenAI-compatible server returns when it extracts the calls itself. :meth:`Codec.parse`
    handles it once for all formats (:func:`decode_tool_calls`, the OpenAI decoding):

    - non-empty ``tool_calls``: a tool step whose calls are exactly those entries; the text
      ``content`` is *outside text* (it is not searched for calls, so a server that both
      extracts the calls and echoes them in ``content`` does not run them twice);
    - ``tool_calls`` absent, ``None`` or ``[]``: the ``content`` text is what the model wrote
      and is parsed by the codec as usual (a server without a tool parser returns Hermes
      blocks in ``content``); the OpenAI codec takes it as a plain reply;
    - malformed ``tool_calls`` (not a list; an entry without a ``function`` object, without a
      function name, or with arguments that are not a JSON object) give error results for
      those entries, never an exception.

    A ``content`` that is not a string (e.g. a list of parts) is read as no text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from envs.base import tool_schema
from toolenv.calls import Call
from toolenv.formats.style import NEUTRAL_SYSTEM, PromptStyle, render_docs, wrap_results

#: what a model sees for a tool-call block that could not be decoded (no call ran)
PARSE_ERROR_PREFIX = "Error: the tool call could not be decoded: "


@dataclass(frozen=True)
class ParseResult:
    """What a codec made of one assistant message.

    ``attempted`` says the message has tool-call structure (it is a tool step, not a reply);
    ``calls`` are the decodable calls in order; ``errors`` describe the blocks that were not
    decodable; ``outside_text`` is the non-whitespace text outside any call structure.
    """

    calls: tuple[Call, ...] = ()
    errors: tuple[str, ...] = ()
    attempted: bool = False
    outside_text: str = ""
    #: the ids a model gave its ``tool_calls`` entries (message dicts): those of ``calls``, then
    #: those of the entries that failed, in the order the env answers them (calls, then errors),
    #: so that each result message carries the id of the entry it answers
    call_ids: tuple[str, ...] = ()
    #: calls whose positional arguments were dropped, as BFCL's prompting decoder drops them
    positional_dropped: int = 0
    #: execution strings BFCL's decoder produced that toolenv does not run (see
    #: toolenv.formats.bfcl_decode); each also has an entry in ``errors``
    unrunnable: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``"calls"``, ``"partial"`` (some blocks failed), ``"invalid"`` (all failed) or ``"text"``."""
        if not self.attempted:
            return "text"
        if self.errors:
            return "partial" if self.calls else "invalid"
        return "calls" if self.calls else "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "calls": [call.to_dict() for call in self.calls],
            "errors": list(self.errors),
            "outside_text": self.outside_text,
            **({"positional_dropped": self.positional_dropped} if self.positional_dropped else {}),
        }


@dataclass(frozen=True)
class ToolSpec:
    """One tool as offered to a model: the official doc and its JSON-Schema form."""

    name: str
    doc: Mapping[str, Any]
    schema: Mapping[str, Any] = field(default_factory=dict)

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.schema.get("description", ""),
                "parameters": self.schema.get("parameters", {"type": "object", "properties": {}}),
            },
        }


def tool_specs(docs: Iterable[Mapping[str, Any]]) -> list[ToolSpec]:
    """The tools a model is offered: each official (or variant) doc with its JSON-Schema form,
    converted by :func:`envs.base.tool_schema` (the one conversion; tests/test_schemas.py
    validates what this returns)."""
    return [ToolSpec(doc["name"], doc, tool_schema(doc)) for doc in docs]


class Codec:
    """Base class of the call formats (see module docstring)."""

    #: registry name, used by ``call_format=...``
    name: ClassVar[str] = ""
    #: the token sequence that opens a tool call, for structural health and probes ("" if none)
    call_opener: ClassVar[str] = ""

    def __init__(self, style: PromptStyle | None = None, keep_positional: bool = False) -> None:
        #: where tools go, how docs are written, how results are wrapped (default: the codec's own)
        self.style = style or PromptStyle()
        #: bind positional arguments instead of dropping them as BFCL's python decoder does
        #: (only the python-list format drops them; see toolenv.formats.python_list)
        self.keep_positional = keep_positional

    def styled_listing(self, tools: Sequence[ToolSpec]) -> str | None:
        """The tool docs in the style's doc format; None for the codec's own listing."""
        if self.style.docs == "default":
            return None
        return render_docs([tool.openai()["function"] for tool in tools], self.style.docs)

    def opening_messages(self, tools: Sequence[ToolSpec], first_turn: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The system message and the first turn's user messages, the tools placed as the
        style says (by default: the system prompt, then the user messages unchanged)."""
        prompt = self.system_prompt(tools)
        if self.style.tools_in == "system" or not first_turn:
            return [{"role": "system", "content": prompt}] + [dict(m) for m in first_turn]
        first = dict(first_turn[0])
        first["content"] = f"{prompt}\n\n{first.get('content') or ''}"
        return [{"role": "system", "content": NEUTRAL_SYSTEM}, first] + [dict(m) for m in first_turn[1:]]

    def results_text(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        """A step's results as the observation text, wrapped as the style says."""
        if self.style.results == "default":
            return self.render_results(calls, results)
        return wrap_results([call.name if call is not None else "" for call in calls], results, self.style.results)

    def results_messages(
        self, calls: Sequence[Call | None], results: Sequence[str], call_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """A step's results as chat messages, each content wrapped as the style says."""
        messages = self.result_messages(calls, results, call_ids)
        if self.style.results == "default":
            return messages
        return [
            {**message, "content": wrap_results([call.name if call is not None else ""], [text], self.style.results)}
            for message, call, text in zip(messages, calls, results)
        ]

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        raise NotImplementedError

    def reveal_message(self, tools: Sequence[ToolSpec]) -> str:
        """The user message of a miss_func reveal turn (held-out tools become available)."""
        styled = self.styled_listing(tools)
        return (
            "The following functions are now available:\n"
            + (styled if styled is not None else "\n".join(json.dumps(t.openai(), ensure_ascii=False) for t in tools))
            + "\n"
            + REVEAL_SENTENCE
        )

    def render_calls(self, calls: Sequence[Call]) -> Any:
        """The assistant output that expresses ``calls`` in this format."""
        raise NotImplementedError

    def parse(self, output: Any) -> ParseResult:
        """Decode an assistant output: text, or a message dict (see the module docstring).
        Never raises. Subclasses implement :meth:`parse_text`; dicts are handled here so that
        every format treats them the same way."""
        if isinstance(output, Mapping):
            return self.parse_message(output)
        return self.parse_text(output)

    def parse_message(self, message: Mapping[str, Any]) -> ParseResult:
        """Decode an OpenAI-style assistant message dict (see the module docstring)."""
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        tool_calls = message.get("tool_calls")
        if tool_calls is None or (isinstance(tool_calls, list) and not tool_calls):
            return self.parse_content(text)
        return decode_tool_calls(tool_calls, outside_text=text.strip())

    def parse_content(self, text: str) -> ParseResult:
        """The ``content`` of a message dict without ``tool_calls``: parsed as model text."""
        return self.parse_text(text)

    def parse_text(self, output: Any) -> ParseResult:
        """Decode a text output (anything but a dict; non-text is a reply). Never raises."""
        raise NotImplementedError

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        """The observation text that carries a step's results back to the model."""
        raise NotImplementedError

    def result_messages(
        self, calls: Sequence[Call | None], results: Sequence[str], call_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The same results as chat messages (one ``tool`` message per result)."""
        return [
            {"role": "tool", "name": call.name if call is not None else "", "content": text}
            for call, text in zip(calls, results)
        ]


#: the sentence BFCL adds when held-out functions are revealed
REVEAL_SENTENCE = "I have updated some more functions you can choose from. What about now?"


def _snippet(item: Any, limit: int = 200) -> str:
    """A short printable form of a malformed entry for its error message (never raises: the
    entry may be circular or too deep for JSON)."""
    try:
        text = json.dumps(item, default=str, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(item) if not isinstance(item, (dict, list)) else type(item).__name__
    return text[:limit]


def decode_tool_calls(tool_calls: Any, outside_text: str = "") -> ParseResult:
    """The calls of a message's ``tool_calls`` field, as the OpenAI codec decodes them.

    Shared by every codec for message dicts (:meth:`Codec.parse_message`). Each entry is
    ``{"id", "type": "function", "function": {"name", "arguments"}}``; the arguments are a
    JSON object or a string holding one. An entry that does not decode becomes an error (its
    call does not run) and the others still run; the result is always a tool step."""
    if not isinstance(tool_calls, list):
        return ParseResult(
            errors=(f"'tool_calls' must be a list, not {type(tool_calls).__name__}",),
            attempted=True,
            outside_text=outside_text,
        )
    calls: list[Call] = []
    errors: list[str] = []
    ids: list[str] = []
    failed_ids: list[str] = []
    for index, item in enumerate(tool_calls):
        fallback_id = f"call_{index}"
        try:
            if not isinstance(item, Mapping):
                raise ValueError("a tool_calls entry must be an object with a 'function'")
            item_id = str(item.get("id") or fallback_id)
            fallback_id = item_id
            function = item.get("function")
            if not isinstance(function, Mapping):
                raise ValueError("a tool_calls entry needs a 'function' object")
            calls.append(call_from_json(dict(function)))
            ids.append(item_id)
        except (ValueError, RecursionError) as exc:
            # RecursionError: absurdly nested arguments; its message says nothing useful
            reason = type(exc).__name__ if isinstance(exc, RecursionError) else str(exc)
            errors.append(f"{reason}: {_snippet(item)}")
            failed_ids.append(fallback_id)
    return ParseResult(tuple(calls), tuple(errors), True, outside_text, tuple(ids + failed_ids))


def arguments_object(value: Any) -> dict[str, Any]:
    """A JSON call's ``arguments``: an object, or a string holding one (OpenAI style)."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("'arguments' must be a JSON object")
    return value


def call_from_json(obj: Any, name_key: str = "name", args_key: str = "arguments") -> Call:
    """A :class:`Call` from ``{"name": …, "arguments": {…}}``; ``ValueError`` when malformed."""
    if not isinstance(obj, dict):
        raise ValueError("a tool call must be a JSON object")
    name = obj.get(name_key)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"'{name_key}' must be a function name")
    if args_key not in obj:
        raise ValueError(f"missing '{args_key}'")
    return Call(name, (), arguments_object(obj[args_key]))


def json_arguments(call: Call) -> dict[str, Any]:
    """A call's arguments as a JSON object (positional arguments have no JSON form)."""
    if call.args:
        raise ValueError(f"{call.name}: positional arguments cannot be rendered in a JSON format")
    return dict(call.kwargs)
