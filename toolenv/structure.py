"""Structural health of assistant messages: the paper's four states, format-aware.

The paper sorts every assistant message into one of four states (docs/paper-methods.md §6.2);
its classifier was not released, so these are our operational rules, applied through the call
format's own parser:

``healthy_call``
    The message is a tool step in which every call block decoded and nothing but whitespace
    stands outside the call structure.
``healthy_response``
    A non-empty plain reply: no tool-call structure, no stray call tags, no leaked chat
    control tokens or role lines.
``text_pollution``
    Structure is there but contaminated: some blocks failed to decode, text outside the blocks
    (e.g. a hallucinated "execution result:"), a call tag without its partner (an unclosed
    ``<tool_call>`` followed by content), or leaked role lines/tokens ("user", ``<|im_start|>``).
``full_collapse``
    Nothing but control material: an empty message, or one made only of call tags, chat control
    tokens and role words (``<tool_call>`` then end of turn, repeated tags).
"""

from __future__ import annotations

import re
from typing import Any

from toolenv.formats import Codec, ParseResult

STATES = ("healthy_call", "healthy_response", "text_pollution", "full_collapse")

_CHAT_TOKENS = re.compile(r"<\|[a-z_]+\|>|<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>")
_ROLE_LINE = re.compile(r"^\s*(user|assistant|system|tool)\s*$", re.MULTILINE | re.IGNORECASE)
_CALL_TAGS = re.compile(r"</?tool_call>|</?tool_response>|</?functions?\b[^>]*>|</?param\b[^>]*>|```(?:json)?")


def _control_only(text: str) -> bool:
    """True when nothing but tags, chat tokens, role words, brackets and whitespace remain."""
    rest = _CALL_TAGS.sub(" ", _CHAT_TOKENS.sub(" ", text))
    rest = _ROLE_LINE.sub(" ", rest)
    return not re.sub(r"[\s\[\]{}]", "", rest)


def classify(output: Any, codec: Codec, parsed: ParseResult | None = None) -> str:
    """The structural state of one assistant output under ``codec`` (see module docstring)."""
    parsed = parsed if parsed is not None else codec.parse(output)
    text = output if isinstance(output, str) else _message_text(output)
    if not text.strip() and not parsed.calls:
        return "full_collapse"
    if parsed.attempted:
        if parsed.calls and not parsed.errors and not parsed.outside_text and not _CHAT_TOKENS.search(text):
            return "healthy_call"
        if not parsed.calls and _control_only(text):
            return "full_collapse"
        return "text_pollution"
    if _control_only(text):
        return "full_collapse"
    opener = codec.call_opener
    leaked_tag = bool(_CALL_TAGS.search(text)) or (opener not in ("", "[") and opener in text)
    if leaked_tag or _CHAT_TOKENS.search(text) or _ROLE_LINE.search(text):
        return "text_pollution"
    return "healthy_response"


def _message_text(message: Any) -> str:
    if isinstance(message, dict):
        parts = [message.get("content") or ""]
        if message.get("tool_calls"):
            parts.append(str(message["tool_calls"]))
        return "\n".join(str(p) for p in parts)
    return "" if message is None else str(message)
