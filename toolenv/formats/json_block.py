"""A JSON list of calls in a fenced block::

    ```json
    [{"name": "cd", "arguments": {"folder": "document"}}]
    ```

Decoding takes the first fenced block (``json`` tag optional), or the whole message when it is
a bare JSON list or object; ``"function"``/``"parameters"`` keys (BFCL's json return format) are
accepted as well as ``"name"``/``"arguments"``. A message with no JSON call structure is a reply.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from toolenv.calls import Call
from toolenv.formats.base import Codec, ParseResult, ToolSpec, call_from_json, json_arguments

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


class JSONBlockCodec(Codec):
    name = "json_block"
    call_opener = "```json"

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        listing = self.styled_listing(tools)
        if listing is None:
            listing = json.dumps([tool.openai()["function"] for tool in tools], ensure_ascii=False, indent=2)
        return (
            "You are a helpful assistant with access to functions. To call functions, reply with "
            "only a fenced JSON list:\n"
            '```json\n[{"name": "func_name", "arguments": {"param": "value"}}]\n```\n'
            "When no more calls are needed, answer in plain text without a JSON block.\n\n"
            f"Functions (JSON Schema):\n{listing}"
        )

    def render_calls(self, calls: Sequence[Call]) -> str:
        items = [{"name": call.name, "arguments": json_arguments(call)} for call in calls]
        return "```json\n" + json.dumps(items, ensure_ascii=False) + "\n```"

    def parse_text(self, output: Any) -> ParseResult:
        if not isinstance(output, str):
            return ParseResult(errors=("the output is not text",))
        fence = _FENCE.search(output)
        if fence:
            payload, outside = fence.group(1), (output[: fence.start()] + output[fence.end() :]).strip()
        else:
            payload, outside = output, ""
            stripped = output.strip()
            if not (stripped.startswith("[{") or stripped.startswith("{")):
                return ParseResult(outside_text=stripped)
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            if not fence:
                return ParseResult(outside_text=output.strip())
            return ParseResult(errors=(f"invalid JSON: {exc}",), attempted=True, outside_text=outside)
        items = data if isinstance(data, list) else [data]
        if not fence and not all(isinstance(i, dict) and ("name" in i or "function" in i) for i in items):
            return ParseResult(outside_text=output.strip())
        calls, errors = [], []
        for item in items:
            try:
                if isinstance(item, dict) and "function" in item and "name" not in item:
                    calls.append(call_from_json(item, "function", "parameters"))
                else:
                    calls.append(call_from_json(item))
            except (ValueError, RecursionError) as exc:
                errors.append(f"{exc}: {json.dumps(item, default=str)[:200]}")
        if not calls and not errors:
            return ParseResult()  # "[]": nothing to call, the turn ends
        return ParseResult(tuple(calls), tuple(errors), True, outside)

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return json.dumps(
            [{"name": call.name if call is not None else "", "result": text} for call, text in zip(calls, results)],
            ensure_ascii=False,
        )
