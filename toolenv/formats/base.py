"""What a call format (codec) is: tools → system prompt, model text ⇄ calls, results → text.

A codec knows nothing about state: it renders and parses. The environment decides what a parse
means for the episode: a message in which the codec found tool-call structure is a *tool step*
(its calls run, its malformed parts come back as error results); any other message ends the
user turn, as in BFCL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

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
    #: the ids a model gave its calls (OpenAI format), to answer each with its own id
    call_ids: tuple[str, ...] = ()

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


class Codec:
    """Base class of the call formats (see module docstring)."""

    #: registry name, used by ``call_format=...``
    name: ClassVar[str] = ""
    #: the token sequence that opens a tool call, for structural health and probes ("" if none)
    call_opener: ClassVar[str] = ""

    def __init__(self, style: PromptStyle | None = None) -> None:
        #: where tools go, how docs are written, how results are wrapped (default: the codec's own)
        self.style = style or PromptStyle()

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
        """Decode an assistant output. Never raises."""
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
