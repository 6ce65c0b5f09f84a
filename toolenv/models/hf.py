"""A transformers causal LM as a :class:`ChatModel` (batched ``generate``, left padding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from toolenv.models.base import ChatModel, GenerationConfig, ModelError


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


class TransformersChatModel(ChatModel):
    def __init__(self, model: Any, tokenizer: Any, name: str, generation: GenerationConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.generation = generation
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
            raise ModelError(f"cannot load a transformers model from {path}: {str(exc).splitlines()[0]}") from None
        model.eval()
        return cls(model, tokenizer, name, generation)

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(_roles_for_template(self.tokenizer, messages), add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
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
