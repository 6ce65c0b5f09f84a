"""Turning token sequences into padded tensors, and packing them into micro-batches.

The one padder of the trainer: GRPO updates, the SFT loss and the joint SFT term all pad on the
right (under causal attention a real token never sees the padding after it, which is what lets
:func:`trainers.logprobs.causal_only` drop the attention mask), and all pack by the same token
budget so a micro-batch's padded size is bounded.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch


def pad_right(
    rows: Sequence[Sequence[float]], value: float, dtype: torch.dtype, width: int | None = None
) -> torch.Tensor:
    """``[len(rows), width]`` tensor: row ``i`` starts with ``rows[i]``, the rest is ``value``
    (``width`` defaults to the longest row)."""
    width = max((len(row) for row in rows), default=0) if width is None else width
    out = torch.full((len(rows), width), value, dtype=dtype)
    for index, row in enumerate(rows):
        if len(row):
            out[index, : len(row)] = torch.tensor(list(row), dtype=dtype)
    return out


def attention_mask(lengths: Sequence[int], width: int) -> torch.Tensor:
    """``[len(lengths), width]`` long tensor: 1 on the first ``lengths[i]`` positions of row ``i``."""
    return (torch.arange(width).unsqueeze(0) < torch.tensor(list(lengths), dtype=torch.long).unsqueeze(-1)).long()


def collate(
    sequences: Sequence[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, mask_per_token)`` pairs → padded ids, attention mask and target mask
    (``[B, T-1]``, the mask shifted to label positions: position t scores token t+1)."""
    ids = pad_right([seq for seq, _ in sequences], pad_id, torch.long)
    attention = attention_mask([len(seq) for seq, _ in sequences], ids.shape[1])
    target = pad_right([mask for _, mask in sequences], 0.0, torch.float32, ids.shape[1])
    return ids, attention, target[:, 1:]


def pack_by_tokens(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped into micro-batches whose padded size (rows × longest) stays within
    ``max_tokens`` (a longer single sequence gets a micro-batch of its own). Sorted by length
    so padding is small; deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        width = max(longest, lengths[index])
        if current and width * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, width = [], lengths[index]
        current.append(index)
        longest = width
    if current:
        batches.append(current)
    return batches


def pack_by_prefix(prefixes: Sequence[Sequence[int]], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped into micro-batches whose rows all start with the same prefix (a GRPO
    group's prompt), each costing ``len(prefix) + rows × (longest − len(prefix))`` tokens
    within ``max_tokens`` (the prefix is computed once: trainers/logprobs.py). Groups keep
    their first-appearance order, rows within one are sorted by length; deterministic. A group
    too large for one micro-batch is split, each part recomputing the prefix."""
    by_prefix: dict[tuple[int, ...], list[int]] = {}
    for index, prefix in enumerate(prefixes):
        by_prefix.setdefault(tuple(prefix), []).append(index)
    batches: list[list[int]] = []
    for prefix, members in by_prefix.items():
        shared = len(prefix)
        current: list[int] = []
        for index in sorted(members, key=lambda i: (lengths[i], i)):
            longest = lengths[index]  # sorted: the newest row is the longest
            if current and shared + (len(current) + 1) * (longest - shared) > max_tokens:
                batches.append(current)
                current = []
            current.append(index)
        batches.append(current)
    return batches


# -- data parallel: the same number of synchronised backwards on every rank ----------------


def accumulation_context(model: Any, index: int, count: int) -> Any:
    """Gradient accumulation under data parallelism: micro-batch ``index`` of ``count`` (every
    rank runs ``count``) keeps its gradient local (DDP's ``no_sync``, FSDP2's
    ``set_requires_gradient_sync(False)``) except the last, whose backward reduces the
    accumulated sum. Without either: nothing."""
    if hasattr(model, "no_sync"):
        return model.no_sync() if index < count - 1 else contextlib.nullcontext()
    if hasattr(model, "set_requires_gradient_sync"):
        return _gradient_sync(model, index == count - 1)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _gradient_sync(model: Any, sync: bool) -> Any:
    model.set_requires_gradient_sync(sync)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def zero_forward(model: Any, pad_id: int) -> None:
    """A no-grad forward of one two-token row: under FSDP every forward gathers parameters
    collectively, so a rank with fewer no-grad micro-batches than the others runs these."""
    device = next(model.parameters()).device
    ids = torch.full((1, 2), int(pad_id), dtype=torch.long, device=device)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)


def zero_backward(model: Any, pad_id: int) -> None:
    """A forward and a backward of a zero loss on one two-token row: a rank with fewer
    micro-batches than the others runs these so that every rank's DDP reducer takes part in
    the same all-reduces. Every parameter gets a zero gradient (the loss is ``0 · logits``,
    and the logits depend on all the weights)."""
    device = next(model.parameters()).device
    ids = torch.full((1, 2), int(pad_id), dtype=torch.long, device=device)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
    (logits.float().sum() * 0.0).backward()
