"""Hermes / Qwen2.5 tool calls: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``.

The paper's format. Parsing follows its tool server: a message that contains ``</tool_call>``
is a tool step and every ``<tool_call>…</tool_call>`` block in it is decoded as JSON with
``name`` and ``arguments``; a message without a closing tag (an unclosed ``<tool_call>``
included) is a plain reply that ends the turn. Results come back as ``<tool_response>`` blocks,
byte-identical to Qwen's rendering of ``tool`` messages.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.formats.base import Codec, ParseResult, ToolSpec, call_from_json, json_arguments

_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


class HermesCodec(Codec):
    name = "hermes"
    call_opener = "<tool_call>"

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        listing = self.styled_listing(tools)
        if listing is None:
            listing = "\n".join(json.dumps(tool.openai(), ensure_ascii=False) for tool in tools)
        return (
            "You are a helpful assistant that completes the user's requests by calling tools.\n\n"
            "# Tools\n\n"
            "You may call one or more functions to assist with the user query.\n\n"
            "The function signatures are listed inside <tools></tools> XML tags:\n"
            f"<tools>\n{listing}\n</tools>\n\n"
            "For each function call, return a JSON object with the function name and arguments "
            "inside <tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
            "Keep calling functions until the request is fulfilled, then answer in plain text "
            "without any tool call."
        )

    def render_calls(self, calls: Sequence[Call]) -> str:
        return "\n".join(
            "<tool_call>\n"
            + json.dumps({"name": call.name, "arguments": json_arguments(call)}, ensure_ascii=False)
            + "\n</tool_call>"
            for call in calls
        )

    def parse_text(self, output: Any) -> ParseResult:
        if not isinstance(output, str):
            return ParseResult(errors=("the output is not text",))
        if "</tool_call>" not in output:
            return ParseResult(outside_text=output.strip())
        calls, errors = [], []
        for block in _BLOCK.findall(output):
            try:
                calls.append(call_from_json(json.loads(block.strip())))
            except (ValueError, RecursionError) as exc:
                errors.append(
                    f"{type(exc).__name__ if isinstance(exc, RecursionError) else exc}: {block.strip()[:200]}"
                )
        if not calls and not errors:
            errors.append("'</tool_call>' without an opening '<tool_call>'")
        outside = _BLOCK.sub("", output).replace("</tool_call>", "").strip()
        return ParseResult(tuple(calls), tuple(errors), True, outside)

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return "".join(f"\n<tool_response>\n{text.strip()}\n</tool_response>" for text in results).strip()
