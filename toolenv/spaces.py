"""Spaces for chat-like text, cheap to check and to pickle.

Gymnasium's ``Text`` space checks every character against a charset, which either rejects
real model output (the default charset has no spaces or punctuation) or costs hundreds of MB
for full Unicode. These spaces check types and lengths only, and sample short printable text
from the space's seeded RNG, so ``check_env`` and vector environments work (use
``vector_kwargs={"shared_memory": False}`` with ``AsyncVectorEnv``).
"""

from __future__ import annotations

import string
from typing import Any, Sequence

import numpy as np
from gymnasium.spaces import Space

_SAMPLE_ALPHABET = np.array(list(string.printable + "äéß€中文"))


class ToolText(Space[str]):
    """Any ``str`` of at most ``max_length`` characters (empty strings, JSON, newlines, unicode)."""

    def __init__(self, max_length: int = 1_000_000, seed: int | np.random.Generator | None = None) -> None:
        self.max_length = int(max_length)
        super().__init__(dtype=str, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        length = int(self.np_random.integers(0, min(self.max_length, 64) + 1))
        return "".join(self.np_random.choice(_SAMPLE_ALPHABET, size=length))

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"ToolText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ToolText) and other.max_length == self.max_length


class AgentAction(ToolText):
    """An assistant output: text, or an OpenAI-style message dict (``content``/``tool_calls``)."""

    def contains(self, x: Any) -> bool:
        if isinstance(x, dict):
            content = x.get("content")
            return (content is None or isinstance(content, str)) and isinstance(
                x.get("tool_calls", []), (list, type(None))
            )
        return super().contains(x)

    def __repr__(self) -> str:
        return f"AgentAction(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AgentAction) and other.max_length == self.max_length


class ChatMessages(Space[list]):
    """A list of chat messages: dicts with a ``role`` string and ``content`` string (or None)."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(dtype=object, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(_is_message(m) for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, str]]:
        text = ToolText(seed=int(self.np_random.integers(2**31))).sample()
        return [{"role": "user", "content": text}]

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ChatMessages()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatMessages)


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("role"), str)
        and (message.get("content") is None or isinstance(message.get("content"), str))
    )


def messages_text(messages: Sequence[dict[str, Any]]) -> str:
    """The contents of messages joined by blank lines (the ``text`` observation)."""
    return "\n\n".join(m["content"] for m in messages if m.get("content"))
