"""A tiny random Qwen2 (3 M parameters, built from a config: no download) with SmolLM2's
tokenizer, for fast trainer tests (machine notes §5)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from toolenv.inference.smollm2 import ensure_smollm2

    return AutoTokenizer.from_pretrained(ensure_smollm2(quiet=True))


def tiny_qwen2(seed: int = 0, tokenizer: Any = None) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer or smollm2_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.train(False)
    torch.set_num_threads(1)
    return model
