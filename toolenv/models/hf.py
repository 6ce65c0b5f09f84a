"""A transformers causal LM as a :class:`ChatModel` (batched ``generate``, left padding)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from toolenv.models.base import ChatModel, GenerationConfig, ModelError, one_line


def _roles_for_template(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages the template can render: ``tool`` messages become ``user`` messages when the
    template has no tool role (SmolLM2's), as Qwen renders tool results inside a user turn."""
    template = tokenizer.chat_template or ""
    keep_tool = "tool" in template
    out = []
    for message in messages:
        role = message["role"]
        if role == "tool" and not keep_tool:
            role = "user"
        out.append({"role": role, "content": message.get("content") or ""})
    return out


def _set_threads(torch: Any) -> None:
    """Intra-op threads for CPU inference: ``TOOLENV_TORCH_THREADS``, else 1 on machines with
    two or fewer CPUs. Measured on the 2-core build machine (SmolLM2-135M, fp32): a decode step
    took 72 ms with 1 thread and 600 ms with 2, a 3,000-token prefill 15 s and 23 s."""
    wanted = int(os.environ.get("TOOLENV_TORCH_THREADS", "0") or 0)
    if not wanted and (os.cpu_count() or 1) <= 2:
        wanted = 1
    if wanted:
        torch.set_num_threads(wanted)


class TransformersChatModel(ChatModel):
    """Batched ``generate`` with left padding, or (``prefix_cache=True``, the default on CPU)
    one conversation at a time with its KV cache kept between rounds: a multi-turn episode
    re-sends a long system prompt every round, and re-encoding only the new tokens is several
    times faster than a padded batch on a CPU. Cached keys are reused only for the exact
    common token prefix, so the outputs are the same either way (up to float rounding)."""

    #: conversations whose caches are kept (oldest dropped first)
    MAX_CACHED = 16

    def __init__(self, model: Any, tokenizer: Any, name: str, generation: GenerationConfig, prefix_cache: bool = True) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.generation = generation
        self.prefix_cache = prefix_cache
        self._caches: dict[str, tuple[list[int], Any]] = {}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(cls, path: Path, name: str, generation: GenerationConfig) -> "TransformersChatModel":
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ModelError("local models need the training extra: pip install -e '.[train]'") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a transformers model from {path}: {one_line(exc)}") from None
        model.train(False)  # inference mode (same as .eval())
        _set_threads(torch)
        return cls(model, tokenizer, name, generation)

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(_roles_for_template(self.tokenizer, messages), add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        if self.prefix_cache:
            return [self._generate_cached(messages) for messages in conversations]
        return self._generate_batch(conversations)

    def _generate_cached(self, messages: Sequence[dict[str, Any]]) -> str:
        import torch
        from transformers import DynamicCache

        config = self.generation
        ids = self.prompt_ids(messages)
        if len(ids) > config.max_prompt_tokens:
            return ""
        key = repr([(m.get("role"), m.get("content")) for m in messages[:2]])
        cached_ids, cache = self._caches.pop(key, ([], None))
        common = 0
        for a, b in zip(cached_ids, ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # at least one new token must be fed
        if cache is None or common == 0:
            cache = DynamicCache()
        elif cache.get_seq_length() > common:
            cache.crop(common - cache.get_seq_length())  # a negative count removes that many tokens
        torch.manual_seed(config.seed)
        sampling = config.temperature > 0
        with torch.no_grad():
            output = self.model.generate(
                input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                past_key_values=cache, max_new_tokens=config.max_new_tokens, do_sample=sampling,
                temperature=config.temperature if sampling else None, top_p=config.top_p if sampling else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        sequence = output[0].tolist()
        self._caches[key] = (sequence[: cache.get_seq_length()], cache)
        while len(self._caches) > self.MAX_CACHED:
            self._caches.pop(next(iter(self._caches)))
        return self.tokenizer.decode(sequence[len(ids):], skip_special_tokens=True)

    def _generate_batch(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Any]:
        import torch

        config = self.generation
        prompts = [self.prompt_ids(messages) for messages in conversations]
        outputs: list[Any] = [""] * len(prompts)
        runnable = [i for i, ids in enumerate(prompts) if len(ids) <= config.max_prompt_tokens]
        if not runnable:
            return outputs
        width = max(len(prompts[i]) for i in runnable)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in runnable])
        attention = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in runnable])
        torch.manual_seed(config.seed)
        sampling = config.temperature > 0
        with torch.no_grad():
            generated = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=config.max_new_tokens,
                do_sample=sampling,
                temperature=config.temperature if sampling else None,
                top_p=config.top_p if sampling else None,
                pad_token_id=pad,
            )
        for row, index in enumerate(runnable):
            new_tokens = generated[row, width:]
            outputs[index] = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return outputs
