"""Log-probs and entropy in vocabulary chunks (issue #15 item 3): the same numbers and gradients
as one full-vocabulary ``log_softmax``, with no logits tensor larger than a chunk, and the
control-token probe seeing every position exactly once."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from tests.tiny_model import tiny_qwen2
from trainers.logprobs import token_logprobs


def _full(model: torch.nn.Module, ids: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain computation: every position's logits at once."""
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    logprobs = F.log_softmax(logits, -1)
    logp = torch.gather(logprobs, -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    keep = torch.zeros_like(logp)
    keep[:, start:] = 1
    return logp * keep, entropy * keep


@settings(max_examples=12, deadline=None)
@given(chunk=st.integers(1, 80), start=st.integers(0, 20), rows=st.integers(1, 3))
def test_chunked_values_and_gradients_equal_the_full_softmax(chunk: int, start: int, rows: int) -> None:
    torch.manual_seed(chunk * 100 + start)
    ids = torch.randint(3, 2000, (rows, 24))
    grads = []
    values = []
    for chunked in (True, False):
        model = tiny_qwen2(seed=3)
        model.train(True)
        if chunked:
            logp, entropy = token_logprobs(
                model, ids, torch.ones_like(ids), with_entropy=True, entropy_grad=True, start=start, chunk_tokens=chunk
            )
        else:
            logp, entropy = _full(model, ids, min(start, 22))
        assert entropy is not None
        (logp.sum() + 0.3 * entropy.sum()).backward()
        values.append((logp.detach(), entropy.detach()))
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(values[0][0], values[1][0], atol=1e-5)
    assert torch.allclose(values[0][1], values[1][1], atol=1e-5)
    for a, b in zip(*grads):  # summation order differs: float rounding, relative to the gradient's size
        assert float((a - b).norm()) <= 1e-5 * float(b.norm()) + 1e-6


class _LargestVocabTensor(TorchDispatchMode):
    """Records the largest tensor whose last dimension is the vocabulary, forward and backward
    (the head's own weight, ``[hidden, vocab]`` transposed, and its gradient are not logits)."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.vocab, self.weight, self.largest = vocab, (hidden, vocab), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor) and tensor.dim() and tensor.shape[-1] == self.vocab:
                if tuple(tensor.shape) == self.weight:
                    continue
                self.largest = max(self.largest, tensor.numel() // self.vocab)
        return out


def test_no_logits_tensor_exceeds_a_chunk_in_forward_or_backward() -> None:
    model = tiny_qwen2(seed=4)
    model.train(True)
    vocab = model.config.vocab_size
    ids = torch.randint(3, 2000, (2, 200))
    with _LargestVocabTensor(vocab, model.config.hidden_size) as seen:
        logp, entropy = token_logprobs(model, ids, torch.ones_like(ids), with_entropy=True, chunk_tokens=32)
        assert entropy is not None
        logp.sum().backward()
    # 2 rows x 16 positions a chunk; the forward's own head ran on one position per row
    assert 0 < seen.largest <= 32
    with _LargestVocabTensor(vocab, model.config.hidden_size) as unchunked:
        model(input_ids=ids, use_cache=False).logits.float().sum().backward()
    assert unchunked.largest == 400  # the check itself sees a full-vocabulary tensor


def test_the_probe_sees_every_position_once_across_chunks() -> None:
    model = tiny_qwen2(seed=5)
    ids = torch.randint(3, 2000, (2, 30))
    seen: list[tuple[int, torch.Tensor]] = []
    whole: list[tuple[int, torch.Tensor]] = []
    model.train(True)
    logp, _ = token_logprobs(
        model, ids, torch.ones_like(ids), start=4, chunk_tokens=10, probe=lambda lp, s: seen.append((s, lp))
    )
    logp.sum().backward()  # the checkpointed chunks run again here: the probe must not
    with torch.no_grad():
        token_logprobs(
            model, ids, torch.ones_like(ids), start=4, chunk_tokens=10_000, probe=lambda lp, s: whole.append((s, lp))
        )
    assert [s for s, _ in seen] == [4, 9, 14, 19, 24] and [s for s, _ in whole] == [4]
    stitched = torch.cat([lp for _, lp in seen], dim=1)
    assert torch.allclose(stitched, whole[0][1], atol=1e-5)


def test_a_model_with_transformed_logits_is_refused() -> None:
    model = tiny_qwen2(seed=6)
    ids = torch.randint(3, 2000, (1, 8))
    forward = model.forward

    def capped(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = forward(*args, **kwargs)
        out.logits = 30.0 * torch.tanh(out.logits / 30.0) + 1.0
        return out

    model.forward = capped  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="not its output embedding"):
        token_logprobs(model, ids, torch.ones_like(ids))
