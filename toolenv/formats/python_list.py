"""BFCL's prompting format: a python list of calls, ``[f(a=1), g(b=2)]``.

The system prompt is BFCL's default prompt (``ret_fmt=python``, JSON docs, plaintext, classic
style), assembled from the templates read at run time from the official distribution, with the
official docs and their "Python 3 syntax" note: byte-identical to what ``bfcl generate`` sends.

Decoding is BFCL's own (:mod:`toolenv.formats.bfcl_decode`, rule for rule): in particular
**positional arguments are dropped**, as ``bfcl generate`` and ``bfcl evaluate`` drop them
(``cd('docs')`` runs as ``cd()``); each call's ``positional_dropped`` count is reported. With
``keep_positional=True`` (env kwarg, ``--keep-positional``) positional arguments are bound
instead, and only literal-only calls decode, which is not how BFCL scores. Anything that does
not decode is a plain reply and ends the turn, as in BFCL. Results come back as BFCL's
prompting handlers send them: the ``repr`` of a list of ``tool`` messages.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Sequence

from envs._official import official_literal
from toolenv.calls import Call, CallSyntaxError, parse_python_calls
from toolenv.formats.base import REVEAL_SENTENCE, Codec, ParseResult, ToolSpec
from toolenv.formats.bfcl_decode import BFCLDecodeError, decode_prompting

#: the error result of a call BFCL would run but toolenv does not (it evaluates nothing)
UNRUNNABLE = "BFCL would run {text}, which toolenv does not evaluate (a nested call or a value that does not read back)"

PROMPTS_FILE = "constants/default_prompts.py"
#: BFCL appends this to every initially offered doc's description (not to held-out docs)
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."


@lru_cache(maxsize=1)
def _templates() -> tuple[str, dict[str, str], str]:
    layout = official_literal(PROMPTS_FILE, "PROMPT_TEMPLATE_MAPPING")["plaintext"]
    style = official_literal(PROMPTS_FILE, "PROMPT_STYLE_TEMPLATES")["classic"]
    output_format = official_literal(PROMPTS_FILE, "OUTPUT_FORMAT_MAPPING")["python"]
    return layout, style, output_format


def bfcl_default_system_prompt(docs: Sequence[dict[str, Any]], listing: tuple[str, str] | None = None) -> str:
    """BFCL's default prompting system prompt for these official docs (hint suffix added).

    ``listing`` = ``(format name, text)`` replaces the JSON docs (prompt-style variants)."""
    layout, style, output_format = _templates()
    if listing is None:
        hinted = []
        for doc in docs:
            doc = dict(doc)
            doc["description"] = doc.get("description", "") + PYTHON_HINT
            hinted.append(doc)
        listing = ("json", json.dumps(hinted, indent=4))
    return layout.format(
        persona=style["persona"],
        task=style["task"],
        tool_call_format=style["tool_call_no_tag"].format(output_format=output_format, param_types=""),
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(format=listing[0], functions=listing[1]),
    )


class PythonListCodec(Codec):
    name = "python"
    call_opener = "["

    def system_prompt(self, tools: Sequence[ToolSpec]) -> str:
        styled = self.styled_listing(tools)
        return bfcl_default_system_prompt(
            [dict(tool.doc) for tool in tools], None if styled is None else (self.style.docs, styled)
        )

    def reveal_message(self, tools: Sequence[ToolSpec]) -> str:
        # BFCL prompting: str(list of held-out docs) + "\n" + the reveal sentence
        styled = self.styled_listing(tools)
        return (str([dict(tool.doc) for tool in tools]) if styled is None else styled) + "\n" + REVEAL_SENTENCE

    def render_calls(self, calls: Sequence[Call]) -> str:
        return "[" + ", ".join(call.to_python() for call in calls) + "]"

    def parse_text(self, output: Any) -> ParseResult:
        if not isinstance(output, str):
            return ParseResult(errors=("the output is not text",))
        if self.keep_positional:
            return self._parse_keeping_positional(output)
        try:
            decoded = decode_prompting(output)
        except BFCLDecodeError:
            return ParseResult(outside_text=output.strip())
        if not decoded.strings:  # "[]" ends the turn in BFCL
            return ParseResult()
        calls, unrunnable = decoded.calls()
        errors = tuple(UNRUNNABLE.format(text=text) for text in unrunnable)
        return ParseResult(
            tuple(calls), errors, True, "", positional_dropped=decoded.positional_dropped, unrunnable=tuple(unrunnable)
        )

    def _parse_keeping_positional(self, output: str) -> ParseResult:
        text = output.strip("`\n ")
        if not text:
            return ParseResult()
        if not text.startswith("["):
            text = "[" + text
        if not text.endswith("]"):
            text = text + "]"
        try:
            calls = parse_python_calls(text)
        except CallSyntaxError:
            return ParseResult(outside_text=output.strip())
        if not calls:
            return ParseResult()
        return ParseResult(tuple(calls), (), True, "")

    def render_results(self, calls: Sequence[Call | None], results: Sequence[str]) -> str:
        return repr(
            [
                {"role": "tool", "name": call.to_python() if call is not None else "", "content": text}
                for call, text in zip(calls, results)
            ]
        )
