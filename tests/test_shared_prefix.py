"""The shared-prefix update (issue #15 item 4): a GRPO group's prompt computed once and its keys
and values reused by every sample gives the plain update's loss and gradients, to float
tolerance, for multi-turn rollouts (trained and observation tokens interleaved, unequal
lengths, several groups), with the KL reference, with activation checkpointing and with
micro-batches that split a group."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tiny_model import tiny_qwen2
from trainers.batching import pack_by_prefix
from trainers.grpo import GRPOConfig, GRPOUpdater
from trainers.logprobs import token_logprobs
from trainers.train import enable_activation_checkpointing
from trainers.types import Rollout


def _multi_turn_rollouts(groups: int, samples: int, prompt: int, seed: int) -> list[Rollout]:
    """``groups`` prompts of ``prompt`` tokens, ``samples`` rollouts each: assistant runs (mask
    1, with engine log-probs) alternating with observation runs (mask 0), unequal lengths."""
    generator = torch.Generator().manual_seed(seed)
    rollouts = []
    for group in range(groups):
        prompt_ids = torch.randint(3, 40000, (prompt,), generator=generator).tolist()
        for sample in range(samples):
            completion: list[int] = []
            mask: list[int] = []
            for turn in range(1 + int(torch.randint(1, 3, (1,), generator=generator))):
                sampled = int(torch.randint(2, 9, (1,), generator=generator))
                completion += torch.randint(3, 40000, (sampled,), generator=generator).tolist()
                mask += [1] * sampled
                if turn < 2:
                    observed = int(torch.randint(3, 12, (1,), generator=generator))
                    completion += torch.randint(3, 40000, (observed,), generator=generator).tolist()
                    mask += [0] * observed
            logprobs = [(-0.5 if m else 0.0) for m in mask]
            reward = float(torch.rand(1, generator=generator) < 0.5)
            rollouts.append(
                Rollout(f"task{group}", group, sample, prompt_ids, completion, mask, logprobs, reward, None)  # type: ignore[arg-type]
            )
    return rollouts


def _update(
    rollouts: list[Rollout], shared: bool, checkpointing: bool, kl_coef: float, micro_batch_tokens: int
) -> tuple[dict[str, float], list[torch.Tensor]]:
    model = tiny_qwen2(seed=21)
    reference = copy.deepcopy(model).requires_grad_(False) if kl_coef else None
    model.train(True)
    if checkpointing:
        enable_activation_checkpointing(model)
    config = GRPOConfig(
        kl_coef=kl_coef,
        mini_batches=1,
        old_logprobs="recompute",
        shared_prefix=shared,
        micro_batch_tokens=micro_batch_tokens,
        logit_chunk_tokens=16,
        entropy_coef=0.01,
    )
    updater = GRPOUpdater(
        model, torch.optim.SGD(model.parameters(), lr=0.5), None, config, pad_id=2, reference=reference
    )
    stats = updater.step(rollouts)
    return stats.to_dict(), [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("checkpointing", "kl_coef", "micro_batch_tokens"),
    [(False, 0.0, 4096), (True, 1e-2, 4096), (False, 1e-2, 60)],
    ids=["plain", "checkpointed-with-reference", "groups-split-over-micro-batches"],
)
def test_shared_prefix_update_equals_the_plain_update(
    checkpointing: bool, kl_coef: float, micro_batch_tokens: int
) -> None:
    rollouts = _multi_turn_rollouts(groups=3, samples=4, prompt=40, seed=7)
    plain_stats, plain = _update(rollouts, False, checkpointing, kl_coef, micro_batch_tokens)
    shared_stats, shared = _update(rollouts, True, checkpointing, kl_coef, micro_batch_tokens)
    initial = [p.detach() for p in tiny_qwen2(seed=21).parameters()]
    moved = sum(float((p - q).norm()) for p, q in zip(plain, initial))
    assert moved > 1e-3  # the update did something, so equal weights mean equal gradients
    for a, b, start in zip(shared, plain, initial):
        # SGD at lr 0.5: the weight change is the gradient, compared relative to its size
        assert float(((a - start) - (b - start)).norm()) <= 1e-4 * float((b - start).norm()) + 1e-6
    for key in ("pg_loss", "kl", "entropy", "clip_frac", "grad_norm", "trained_tokens"):
        assert shared_stats[key] == pytest.approx(plain_stats[key], rel=1e-4, abs=1e-6), key


def test_shared_prefix_logprobs_equal_plain_ones_with_right_padding() -> None:
    model = tiny_qwen2(seed=22)
    prefix = torch.randint(3, 40000, (30,)).tolist()
    rows = [prefix + torch.randint(3, 40000, (n,)).tolist() for n in (3, 9, 5)]
    width = max(map(len, rows))
    ids = torch.tensor([row + [2] * (width - len(row)) for row in rows])
    attention = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    with torch.no_grad():
        plain, _ = token_logprobs(model, ids, attention, start=29, with_entropy=True)
        shared, _ = token_logprobs(model, ids, attention, start=29, with_entropy=True, shared_prefix=29)
    for row, length in enumerate(map(len, rows)):
        assert torch.allclose(shared[row, : length - 1], plain[row, : length - 1], atol=1e-5)


def test_rows_that_differ_inside_the_prefix_are_refused() -> None:
    model = tiny_qwen2(seed=23)
    ids = torch.tensor([[5, 6, 7, 8], [5, 9, 7, 8]])
    with pytest.raises(ValueError, match="differ inside the prefix"):
        token_logprobs(model, ids, torch.ones_like(ids), start=2, shared_prefix=2)
    same = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 8]])
    with torch.no_grad():  # a prefix reaching past the first scored position is cut to it
        clipped, _ = token_logprobs(model, same, torch.ones_like(same), start=1, shared_prefix=3)
        plain, _ = token_logprobs(model, same, torch.ones_like(same), start=1)
    assert torch.allclose(clipped, plain, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 30)), min_size=1, max_size=20),
    st.integers(20, 120),
)
def test_pack_by_prefix_keeps_rows_of_one_prefix_within_the_budget(rows: list[tuple[int, int]], budget: int) -> None:
    prefixes = [[prefix] * 10 for prefix, _ in rows]  # four possible 10-token prefixes
    lengths = [10 + extra for _, extra in rows]
    batches = pack_by_prefix(prefixes, lengths, budget)
    assert sorted(i for batch in batches for i in batch) == list(range(len(rows)))
    for batch in batches:
        assert len({tuple(prefixes[i]) for i in batch}) == 1
        cost = 10 + len(batch) * (max(lengths[i] for i in batch) - 10)
        assert len(batch) == 1 or cost <= budget


def test_a_forward_that_ignores_the_prefix_cache_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers renamed the cache keyword (``past_key_values`` → ``cache``); a name the
    forward does not take is swallowed by its ``**kwargs``, and the rows would be scored without
    their prefix. The prefix pass must have filled the cache, or the update refuses."""
    import trainers.logprobs as logprobs

    model = tiny_qwen2(seed=23)
    ids = torch.randint(3, 1000, (2, 20), generator=torch.Generator().manual_seed(0))
    ids[1, :10] = ids[0, :10]
    logprobs.shared_prefix_hidden(model, ids, 10)
    monkeypatch.setattr(logprobs, "cache_argument", lambda model: "no_such_keyword")
    with pytest.raises(RuntimeError, match="ignored its KV cache"):
        logprobs.shared_prefix_hidden(model, ids, 10)
