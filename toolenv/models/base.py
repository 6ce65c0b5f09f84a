"""The chat-model interface the evaluation runner and the trainer drive."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence


class ModelError(RuntimeError):
    """A one-line, actionable problem with a model (missing, unreachable, wrong kind)."""


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. ``temperature=0`` means greedy (BFCL uses 0.001)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    #: longest prompt (tokens) sent to a local model; longer conversations get an empty reply
    max_prompt_tokens: int = 7936

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatModel:
    """Generates one assistant output per conversation, for a batch of conversations."""

    name: str = "model"
    #: True when the model takes tool schemas and answers with ``tool_calls`` message dicts
    native_tools: bool = False

    def generate(
        self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Sequence[Sequence[dict[str, Any]]] | None = None
    ) -> list[Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": type(self).__name__, "native_tools": self.native_tools}
