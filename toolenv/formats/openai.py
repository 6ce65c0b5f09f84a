"""OpenAI-style function calling: an assistant message dict with ``tool_calls``.

An action is the message dict (``{"role": "assistant", "content": …, "tool_calls": [...]}``)
or its JSON text. Each tool call is ``{"id", "type": "function", "function": {"name",
"arguments": <JSON string>}}``; the arguments may also be an object. A message without
``tool_calls`` is a reply and ends the turn. Results are ``tool`` messages with the call ids.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.formats.base import Codec, ParseResult, ToolSpec, call_from_json, json_arguments


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

    def parse(self, output: Any) -> ParseResult:
        message = output
        if isinstance(output, str):
            try:
                message = json.loads(output)
            except (ValueError, RecursionError):
                return ParseResult(outside_text=output.strip())
        if not isinstance(message, dict):
            return ParseResult(outside_text=str(output).strip() if isinstance(output, str) else "")
        content = message.get("content")
        outside = content.strip() if isinstance(content, str) else ""
        tool_calls = message.get("tool_calls")
        if not tool_calls:
            return ParseResult(outside_text=outside)
        if not isinstance(tool_calls, list):
            return ParseResult(errors=("'tool_calls' must be a list",), attempted=True, outside_text=outside)
        calls, errors, ids = [], [], []
        for index, item in enumerate(tool_calls):
            try:
                function = item.get("function") if isinstance(item, dict) else None
                calls.append(call_from_json(function))
                ids.append(str(item.get("id") or f"call_{index}"))
            except (ValueError, RecursionError, AttributeError) as exc:
                errors.append(f"{exc}: {json.dumps(item, default=str)[:200]}")
        return ParseResult(tuple(calls), tuple(errors), True, outside, tuple(ids))

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return json.dumps(self.result_messages(calls, results), ensure_ascii=False)

    def result_messages(
        self, calls: Sequence[Call | None], results: Sequence[str], call_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        return [
            {"role": "tool", "tool_call_id": call_ids[index] if index < len(call_ids) else f"call_{index}", "content": text}
            for index, text in enumerate(results)
        ]
