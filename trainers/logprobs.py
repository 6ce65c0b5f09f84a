"""The policy's log-probabilities of a rollout's tokens: the one forward pass the GRPO update,
the reference, the old-policy recompute and the SFT loss share (positions aligned so that the
logits at position t score token t+1; causal attention with right padding needs no mask)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache

from toolenv.inference.hf_engine import cache_argument
from trainers.types import Rollout

# -- model forward -------------------------------------------------------------------------


def rollout_sequence(rollout: Rollout) -> tuple[list[int], list[int]]:
    """A rollout's full ids and per-token trained mask (prompt untrained)."""
    return rollout.input_ids, [0] * len(rollout.prompt_ids) + list(rollout.loss_mask)


#: the default number of positions (rows × positions) whose logits exist at once: 1,024 ×
#: Qwen2.5's 151,936-entry vocabulary is 0.6 GB in fp32, and a chunk's backward holds about
#: four such tensors (trainers/plan.py); smaller chunks cost only more, smaller matmuls
LOGIT_CHUNK_TOKENS = 1024


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    probe: Callable[[torch.Tensor, int], None] | None = None,
    start: int = 0,
    entropy_grad: bool = False,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
    shared_prefix: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities of each next token (``[B, T-1]``: position t scores token t+1) and,
    optionally, the entropy of each next-token distribution.

    Only positions ``>= start`` are computed (the rest are 0): prompts are long and never
    trained. The model's forward (``model`` may be DDP- or FSDP-wrapped: its own forward runs,
    so the wrapper's hooks do) stops at the final hidden states; the LM head then runs on
    chunks of about ``chunk_tokens`` positions, each under activation checkpointing when
    gradients are on, so no ``[tokens × vocab]`` tensor larger than a chunk ever exists, in
    the forward or the backward (verl's and Liger's fused/chunked heads do the same). Logits are
    taken in fp32 and divided by the sampling temperature (as verl's actor does).
    ``probe(logprobs, first)`` receives, chunk by chunk, the fp32 log-softmax of positions
    ``first ..`` (``[B, width, V]``) for the control-token monitor.

    ``shared_prefix = K > 0``: every row starts with the same K tokens (a GRPO group's prompt),
    which are run once, as one row, and their keys and values reused by all rows
    (:func:`shared_prefix_hidden`); at most ``start`` of them are shared."""
    width = input_ids.shape[1]
    start = max(0, min(start, width - 2))
    # no position before ``start`` is scored, so the prefix may not reach past it (a batch whose
    # rollouts have no completion yet: ``start`` is clipped to the sequence)
    shared_prefix = min(shared_prefix, start)
    if shared_prefix:
        base, hidden, output = shared_prefix, *shared_prefix_hidden(model, input_ids, shared_prefix)
    else:
        output = model(
            input_ids=input_ids,
            attention_mask=causal_only(attention_mask),
            use_cache=False,
            logits_to_keep=1,  # the head's real work is done below, chunk by chunk
            output_hidden_states=True,
        )
        base, hidden = 0, output.hidden_states[-1]
    head = _unwrapped(model).get_output_embeddings()
    _check_plain_head(head, hidden[:, -1], output.logits[:, -1])
    targets = input_ids[:, start + 1 :]
    step = max(1, chunk_tokens // max(1, input_ids.shape[0]))
    checkpointed = torch.is_grad_enabled()
    probed: set[int] = set()  # a checkpointed chunk runs again in the backward: probe it once
    logps: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    for first in range(start, width - 1, step):
        last = min(first + step, width - 1)

        def chunk(states: torch.Tensor, ids: torch.Tensor, first: int = first) -> tuple[torch.Tensor, torch.Tensor]:
            logits = head(states).float()
            if temperature != 1.0:
                logits = logits / temperature
            norm = torch.logsumexp(logits, dim=-1)
            logp = torch.gather(logits, -1, ids.unsqueeze(-1)).squeeze(-1) - norm
            entropy = torch.zeros_like(norm)
            if with_entropy:
                with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                    entropy = norm - (torch.softmax(logits, dim=-1) * logits).sum(-1)
            if probe is not None and first not in probed:
                probed.add(first)
                probe((logits - norm.unsqueeze(-1)).detach(), first)
            return logp, entropy

        states, ids = hidden[:, first - base : last - base], targets[:, first - start : last - start]
        if checkpointed:
            logp, entropy = torch.utils.checkpoint.checkpoint(chunk, states, ids, use_reentrant=False)
        else:
            logp, entropy = chunk(states, ids)
        logps.append(logp)
        entropies.append(entropy)
    logp = F.pad(torch.cat(logps, dim=1), (start, 0))
    entropy = F.pad(torch.cat(entropies, dim=1), (start, 0)) if with_entropy else None
    return logp, entropy


# -- a group's shared prompt, computed once -------------------------------------------------


def shared_prefix_hidden(model: Any, input_ids: torch.Tensor, prefix: int) -> tuple[torch.Tensor, Any]:
    """Final hidden states of positions ``prefix ..`` of every row (``[B, T - prefix, H]``) and
    the forward's output, with the first ``prefix`` tokens (equal in all rows) run once.

    The prefix goes through the model as one row and leaves its keys and values in a
    :class:`_PrefixRecorder`; the rows' remainders then attend to them through a
    :class:`_PrefixReader`, which hands every layer ``[prefix keys; own keys]`` without storing
    anything. Gradients reach the prefix's weights through its keys and values, once, so the
    loss and its gradient equal the plain forward's (tested), at the cost of one prefix row
    instead of B. Neither cache changes in a second call, which is what makes them safe under
    activation checkpointing (the backward replays each layer): transformers drops a cache
    that a layer would write twice, and keeps one a layer only reads (``_can_checkpoint_with_cache``).

    The prefix runs through the unwrapped model, the remainders through ``model`` itself: a DDP
    wrapper's forward runs once per backward, as its reducer expects; each parameter's gradient
    is still complete (autograd sums both uses before the reducer's hook sees it)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    if not bool((input_ids[:, :prefix] == input_ids[:1, :prefix]).all()):
        raise ValueError("the rows of a shared-prefix batch differ inside the prefix")
    inner = _unwrapped(model)
    layers = [m for m in inner.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        recorder = _PrefixRecorder(config=inner.config)
        name = cache_argument(inner)
        inner(input_ids=input_ids[:1, :prefix], **{name: recorder}, use_cache=True, logits_to_keep=1)
        if not recorder.layers or recorder.get_seq_length() != prefix:
            # a forward that did not take the cache would leave the rows without their prefix
            raise RuntimeError(f"the model's forward ignored its KV cache (passed as {name}=)")
        reader = _PrefixReader(ddp_cache_data=[(layer.keys, layer.values) for layer in recorder.layers])
        output = model(
            input_ids=input_ids[:, prefix:],
            **{name: reader},
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=True,
        )
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache
    return output.hidden_states[-1], output


class _PrefixRecorder(DynamicCache):
    """Stores each layer's keys and values on its first call; a second call (the checkpoint's
    replay of the prefix) gets its own states back and stores nothing."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        if self.layers[layer_idx].get_seq_length() > 0:
            return key_states, value_states
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)


class _PrefixReader(DynamicCache):
    """Holds the prefix's keys and values (one row) and returns, for any batch of rows,
    ``[prefix; new]`` per layer without storing the new states."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        layer = self.layers[layer_idx]
        rows = key_states.shape[0]
        return (
            torch.cat([layer.keys.expand(rows, -1, -1, -1), key_states], dim=-2),
            torch.cat([layer.values.expand(rows, -1, -1, -1), value_states], dim=-2),
        )


def _unwrapped(model: Any) -> Any:
    """The transformers model inside a DDP wrapper (FSDP2 modifies the model in place)."""
    return getattr(model, "module", model)


def _check_plain_head(head: Any, last_hidden: torch.Tensor, last_logits: torch.Tensor) -> None:
    """The chunked path applies the output embedding to the final hidden states; a model that
    transforms its logits after the head (soft-capping, scaling) would be scored wrongly, so the
    position the forward computed itself must agree."""
    with torch.no_grad():
        mine = head(last_hidden).float()
    if not torch.allclose(mine, last_logits.detach().float(), rtol=1e-3, atol=1e-3):
        raise ValueError(
            f"{type(head).__name__}: this model's logits are not its output embedding of the final hidden "
            "states (soft-capped or scaled logits?); the trainer's chunked log-probs do not support it"
        )


def causal_only(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``None`` for right-padded batches: under causal attention a real token never sees the
    padding after it, so the mask changes nothing at real positions, and without it SDPA takes
    its fast causal kernel (3.6x faster on a 2 x 4,500-token CPU batch). A batch with padding
    on the left keeps its mask."""
    if attention_mask is None:
        return None
    lengths = attention_mask.sum(-1)
    right_padded = bool(
        (
            attention_mask.cumsum(-1)
            == torch.minimum(
                torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device), lengths.unsqueeze(-1)
            )
        ).all()
    )
    return None if right_padded else attention_mask


def first_target(rollouts: Sequence[Rollout]) -> int:
    """The first loss position of a batch (the prompt's last token predicts the first
    completion token)."""
    return max(0, min(len(r.prompt_ids) for r in rollouts) - 1)


def engine_logprobs(rows: Sequence[Rollout], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The engine's sampling log-probs laid out like ``mask`` (over ``input_ids[1:]``), and the
    mask of the tokens the engine sampled (trained tokens minus replaced messages, which have
    no engine log-prob)."""
    engine = torch.zeros_like(mask)
    sampled = torch.zeros_like(mask)
    for row, rollout in enumerate(rows):
        start = len(rollout.prompt_ids) - 1
        flags = list(rollout.loss_mask)
        for begin, end in rollout.meta.get("replaced_spans", ()):
            flags[begin:end] = [0] * (end - begin)
        width = min(len(flags), mask.shape[1] - start)
        engine[row, start : start + width] = torch.tensor(rollout.sample_logprobs[:width], dtype=mask.dtype)
        sampled[row, start : start + width] = torch.tensor(flags[:width], dtype=mask.dtype)
    return engine, sampled * mask


# -- update --------------------------------------------------------------------------------
