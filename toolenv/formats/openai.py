"""OpenAI-style function calling: an assistant message dict with ``tool_calls``.

An action is the message dict (``{"role": "assistant", "content": …, "tool_calls": [...]}``)
or its JSON text. Each tool call is ``{"id", "type": "function", "function": {"name",
"arguments": <JSON string>}}``; the arguments may also be an object. A message without
``tool_calls`` is a reply and ends the turn. Results are ``tool`` messages with the call ids.
The ``tool_calls`` decoding itself lives in :func:`toolenv.formats.base.decode_tool_calls`,
shared with every other codec (which all accept message dicts too).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.formats.base import Codec, ParseResult, ToolSpec, json_arguments


class OpenAICodec(Codec):
    name = "openai"
    call_opener = '"tool_calls"'

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        listing = self.styled_listing(tools)
        if listing is None:
            listing = json.dumps([tool.openai() for tool in tools], ensure_ascii=False, indent=2)
        return (
            "You are a helpful assistant that completes the user's requests by calling functions.\n"
            "Call functions through the tool_calls field of your message; answer in plain content "
            "when no more calls are needed.\n\n"
            f"Available functions:\n{listing}"
        )

    def render_calls(self, calls: Sequence[Call]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(json_arguments(call), ensure_ascii=False)},
                }
                for index, call in enumerate(calls)
            ],
        }

    def parse_text(self, output: Any) -> ParseResult:
        # the JSON text of a message dict is decoded like the dict itself (Codec.parse_message)
        if isinstance(output, str):
            try:
                message = json.loads(output)
            except (ValueError, RecursionError):
                return ParseResult(outside_text=output.strip())
            if isinstance(message, dict):
                return self.parse_message(message)
            return ParseResult(outside_text=output.strip())
        return ParseResult()

    def parse_content(self, text: str) -> ParseResult:
        # calls travel in tool_calls only: a message without them is a reply, whatever its text
        return ParseResult(outside_text=text.strip())

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return json.dumps(self.result_messages(calls, results), ensure_ascii=False)

    def result_messages(
        self, calls: Sequence[Call | None], results: Sequence[str], call_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        return [
            {
                "role": "tool",
                "tool_call_id": call_ids[index] if index < len(call_ids) else f"call_{index}",
                "content": text,
            }
            for index, text in enumerate(results)
        ]
