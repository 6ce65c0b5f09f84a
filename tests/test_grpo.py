"""GRPO math on hand-computed numbers, and updates of a tiny random Qwen2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tiny_model import tiny_qwen2
from trainers.batching import collate, pack_by_tokens
from trainers.grpo import GRPOConfig, GRPOUpdater
from trainers.logprobs import rollout_sequence, token_logprobs
from trainers.losses import EPSILON, group_advantages, low_var_kl, policy_loss_terms, token_mean
from trainers.optim import warmup_lambda
from trainers.types import Rollout

# -- advantages ----------------------------------------------------------------------------


def test_advantage_one_success_in_four() -> None:
    # mean 0.25; unbiased std sqrt((0.75² + 3·0.25²)/3) = 0.5
    advantages = group_advantages([1, 0, 0, 0], ["g"] * 4)
    assert advantages[0] == pytest.approx(0.75 / (0.5 + EPSILON), rel=1e-12)
    assert advantages[1:] == [pytest.approx(-0.25 / (0.5 + EPSILON), rel=1e-12)] * 3


def test_advantage_groups_are_separate_and_flat_groups_are_zero() -> None:
    advantages = group_advantages([1, 0, 1, 1, 0.5], ["a", "a", "b", "b", "c"])
    # group a: mean .5, unbiased std sqrt(.5) → ±0.5/0.70711
    assert advantages[0] == pytest.approx(0.5 / (math.sqrt(0.5) + EPSILON))
    assert advantages[1] == pytest.approx(-0.5 / (math.sqrt(0.5) + EPSILON))
    assert advantages[2:4] == [0.0, 0.0]  # all equal: no signal
    # a group of one: verl's mean 0, std 1
    assert advantages[4] == pytest.approx(0.5 / (1 + EPSILON))


def test_advantage_without_std_normalisation() -> None:
    assert group_advantages([1, 0, 0, 0], [0] * 4, normalize_by_std=False) == [0.75, -0.25, -0.25, -0.25]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=8), min_size=1, max_size=5))
def test_advantage_matches_numpy(groups: list[list[float]]) -> None:
    rewards = [r for g in groups for r in g]
    ids = [i for i, g in enumerate(groups) for _ in g]
    got = group_advantages(rewards, ids)
    expected = []
    for g in groups:
        values = np.array(g, dtype=np.float64)
        expected += list((values - values.mean()) / (values.std(ddof=1) + EPSILON))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


# -- policy loss ---------------------------------------------------------------------------


def _terms(advantage: float, ratio: float, clip_c: float | None = 3.0) -> tuple[float, float]:
    loss, clipped = policy_loss_terms(
        torch.tensor([math.log(ratio)], dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
        torch.tensor([advantage], dtype=torch.float64),
        0.2,
        0.2,
        clip_c,
    )
    return float(loss[0]), float(clipped[0])


@pytest.mark.parametrize(
    "advantage, ratio, expected, clipped",
    [
        (1.0, 1.0, -1.0, 0.0),  # on-policy: −A
        (1.0, 1.5, -1.2, 1.0),  # positive advantage, ratio above 1+ε: clipped at 1.2
        (1.0, 0.5, -0.5, 0.0),  # positive advantage, ratio below: the unclipped (larger) loss
        (2.0, 5.0, -2.4, 1.0),  # no dual clip for A > 0
        (-1.0, 0.5, 0.8, 1.0),  # negative advantage, ratio below 1−ε: clipped at 0.8
        (-1.0, 1.1, 1.1, 0.0),  # inside the trust region
        (-1.0, 5.0, 3.0, 0.0),  # dual clip: −A·ratio = 5 capped at −A·c = 3
        (-0.5, 10.0, 1.5, 0.0),
    ],
)
def test_dual_clip_loss_by_hand(advantage: float, ratio: float, expected: float, clipped: float) -> None:
    loss, was_clipped = _terms(advantage, ratio)
    assert loss == pytest.approx(expected, rel=1e-9)
    assert was_clipped == clipped


def test_without_dual_clip_the_loss_is_unbounded() -> None:
    assert _terms(-1.0, 5.0, clip_c=None)[0] == pytest.approx(5.0)
    with pytest.raises(ValueError):
        _terms(-1.0, 5.0, clip_c=1.0)


# -- KL ------------------------------------------------------------------------------------


def test_k3_by_hand() -> None:
    logp, ref = torch.tensor([math.log(0.5), math.log(0.3)]), torch.tensor([math.log(0.25), math.log(0.3)])
    kl = low_var_kl(logp, ref)
    # r = ref/π = 0.5: r − log r − 1 = 0.5 + 0.693147 − 1
    assert float(kl[0]) == pytest.approx(0.5 + math.log(2) - 1, rel=1e-6)
    assert float(kl[1]) == 0.0


def test_k3_is_clamped() -> None:
    kl = low_var_kl(torch.tensor([-40.0]), torch.tensor([0.0]))
    assert float(kl[0]) == 10.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-4, 4), min_size=2, max_size=12), st.lists(st.floats(-4, 4), min_size=2, max_size=12))
def test_k3_expectation_is_the_kl(a: list[float], b: list[float]) -> None:
    # E_{x~π}[k3(x)] = Σ_x ref(x) − 1 + KL(π‖ref) = KL(π‖ref): k3 is unbiased
    n = min(len(a), len(b))
    logp = torch.log_softmax(torch.tensor(a[:n], dtype=torch.float64), -1)
    ref = torch.log_softmax(torch.tensor(b[:n], dtype=torch.float64), -1)
    k3 = low_var_kl(logp, ref)
    kl = float((logp.exp() * (logp - ref)).sum())
    if float((ref - logp).abs().max()) < 20 and float(k3.max()) < 10:  # inside the clamps
        assert float((logp.exp() * k3).sum()) == pytest.approx(kl, abs=1e-9)
    assert float(k3.min()) >= -1e-12  # k3 >= 0 exactly; exp(x) - x - 1 rounds to -1e-16 near x = 0


def test_token_mean() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert float(token_mean(values, mask)) == pytest.approx((1 + 3 + 6) / 3)
    assert float(token_mean(values, torch.zeros_like(mask))) == 0.0


# -- masks and batching --------------------------------------------------------------------


def _rollout(
    prompt: list[int], completion: list[int], mask: list[int], reward: float, group: int = 0, sample: int = 0
) -> Rollout:
    return Rollout("t", group, sample, prompt, completion, mask, [0.0] * len(completion), reward, None)  # type: ignore[arg-type]


def test_masks_shift_to_label_positions() -> None:
    rollout = _rollout([5, 6], [7, 8, 9], [1, 0, 1], 1.0)
    ids, attention, target = collate([rollout_sequence(rollout), ([1, 2], [0, 1])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8, 9], [1, 2, 0, 0, 0]]
    assert attention.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    # target[b, t] is the mask of the token at t+1 (the one position t predicts)
    assert target.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.integers(1, 200))
def test_pack_by_tokens_covers_everything_within_budget(lengths: list[int], budget: int) -> None:
    batches = pack_by_tokens(lengths, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= budget


def test_warmup_schedule() -> None:
    constant = warmup_lambda(10)
    assert [constant(s) for s in (0, 5, 10, 300)] == [0.0, 0.5, 1.0, 1.0]
    cosine = warmup_lambda(2, total_steps=12, schedule="cosine")
    assert cosine(1) == 0.5 and cosine(2) == 1.0
    assert cosine(7) == pytest.approx(0.5) and cosine(12) == pytest.approx(0.0)


# -- updates on a tiny model ---------------------------------------------------------------

PROMPT = [1, 9690, 198, 1530, 314, 2, 198, 1, 520, 9531, 198]


def _group(rewards: list[float], seed: int = 0, length: int = 6) -> list[Rollout]:
    generator = torch.Generator().manual_seed(seed)
    rollouts = []
    for sample, reward in enumerate(rewards):
        completion = torch.randint(100, 40000, (length,), generator=generator).tolist() + [2]
        rollouts.append(_rollout(PROMPT, completion, [1] * len(completion), reward, 0, sample))
    return rollouts


def _updater(
    model,
    lr: float = 1e-3,
    kl_coef: float = 0.0,
    reference=None,
    micro_batch_tokens: int = 4096,
    weight_decay: float = 0.0,
    sgd: bool = False,
    **overrides,
) -> GRPOUpdater:
    optimizer = (
        torch.optim.SGD(model.parameters(), lr=lr)
        if sgd
        else torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    )
    config = GRPOConfig(kl_coef=kl_coef, micro_batch_tokens=micro_batch_tokens, **overrides)
    return GRPOUpdater(model, optimizer, None, config, pad_id=2, reference=reference)


def _sequence_logp(model, rollout: Rollout) -> float:
    ids, attention, mask = collate([rollout_sequence(rollout)], 2)
    with torch.no_grad():
        logp, _ = token_logprobs(model, ids, attention)
    return float((logp * mask).sum())


def test_update_raises_the_logprob_of_rewarded_sequences() -> None:
    model = tiny_qwen2(seed=1)
    rollouts = _group([1.0, 0.0, 0.0, 0.0])
    before = [_sequence_logp(model, r) for r in rollouts]
    updater = _updater(model, lr=3e-3)
    for _ in range(3):
        updater.step(rollouts)
    after = [_sequence_logp(model, r) for r in rollouts]
    assert after[0] > before[0] + 0.5
    assert all(a < b for a, b in zip(after[1:], before[1:]))


def test_kl_term_pulls_back_towards_the_reference() -> None:
    # flat rewards: the only gradient is the KL's, which is 0 at the reference and grows once
    # the policy has moved away from it
    import copy

    model = tiny_qwen2(seed=2)
    reference = copy.deepcopy(model)
    rollouts = _group([1.0, 0.0], seed=3)
    _updater(model, lr=3e-3).step(rollouts)  # move the policy (no KL)
    moved = _sequence_logp(model, rollouts[0])
    flat = [_rollout(r.prompt_ids, r.completion_ids, r.loss_mask, 0.5, 0, r.sample) for r in rollouts]
    updater = _updater(model, lr=3e-3, kl_coef=1.0, reference=reference)
    stats = updater.step(flat)
    assert stats.kl > 0
    back = _sequence_logp(model, rollouts[0])
    assert abs(back - _sequence_logp(reference, rollouts[0])) < abs(moved - _sequence_logp(reference, rollouts[0]))


def test_flat_group_without_kl_leaves_the_model_unchanged() -> None:
    model = tiny_qwen2(seed=4)
    before = [p.detach().clone() for p in model.parameters()]
    stats = _updater(model).step(_group([1.0, 1.0, 1.0], seed=5))
    assert stats.pg_loss == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_token_mean_over_the_mini_batch_by_hand() -> None:
    # rewards 1 and 0 in one group: A = ±0.5/(std .70711 + ε). On the first (on-policy) pass the
    # ratio is 1, so each trained token's loss is −A; the token-mean over 3 + 5 tokens is
    # −(3·A − 5·A)/8, where a mean of per-sequence means would give 0.
    model = tiny_qwen2(seed=6)
    a = _rollout(PROMPT, [300, 301, 302, 2], [1, 1, 0, 1], 1.0, 0, 0)
    b = _rollout(PROMPT, [400, 401, 402, 403, 404, 2], [1, 1, 1, 0, 1, 1], 0.0, 0, 1)
    stats = _updater(model).step([a, b])
    advantage = 0.5 / (math.sqrt(0.5) + EPSILON)
    assert stats.pg_loss == pytest.approx(-(3 * advantage - 5 * advantage) / 8, rel=1e-5)
    assert stats.trained_tokens == 8


def test_loss_ignores_the_micro_batch_split() -> None:
    rollouts = _group([1.0, 0.0, 0.5, 0.0], seed=7) + [
        _rollout(PROMPT, [500, 501, 502, 503, 504, 505, 506, 507, 2], [1, 1, 0, 0, 1, 1, 1, 1, 1], 1.0, 0, 4)
    ]
    results = []
    for budget in (100_000, 1):  # one micro-batch, or one sequence per micro-batch
        model = tiny_qwen2(seed=8)
        torch.manual_seed(0)
        # SGD: the parameters move by lr × gradient, so equal parameters mean equal gradients
        # (Adam's first step is ~lr·sign(g) and would amplify float noise in tiny gradients)
        _updater(model, lr=1.0, micro_batch_tokens=budget, max_grad_norm=1e9, sgd=True).step(rollouts)
        results.append([p.detach().clone() for p in model.parameters()])
    for one, many in zip(*results):
        assert torch.allclose(one, many, atol=1e-6)


def test_observation_tokens_get_no_gradient_signal() -> None:
    # changing the *advantage-free* content of masked positions changes nothing but context:
    # with the same context, a rollout whose masked tail differs must give the same update
    model_a, model_b = tiny_qwen2(seed=9), tiny_qwen2(seed=9)
    base = _group([1.0, 0.0], seed=10)
    tail_a = [
        _rollout(r.prompt_ids, r.completion_ids + [11, 12], r.loss_mask + [0, 0], r.reward, 0, r.sample) for r in base
    ]
    tail_b = [
        _rollout(r.prompt_ids, r.completion_ids + [13, 14], r.loss_mask + [0, 0], r.reward, 0, r.sample) for r in base
    ]
    _updater(model_a, lr=1.0, sgd=True).step(tail_a)
    _updater(model_b, lr=1.0, sgd=True).step(tail_b)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.allclose(p, q, atol=1e-7)


def test_dual_clip_caps_the_gradient_of_stale_negative_samples() -> None:
    # old log-probs far below the current ones (ratio ≫ 3) on a negative advantage: the dual
    # clip makes the loss constant (−A·c), so no gradient flows and nothing changes
    model = tiny_qwen2(seed=11)
    rollouts = _group([1.0, 0.0], seed=12)
    updater = _updater(model, lr=1e-2)
    old, _ = updater.precompute(rollouts)
    stale = [o - 5.0 for o in old]  # ratio e^5 ≈ 148 everywhere
    updater.precompute = lambda rollouts, probe=None, on_policy=False: (stale, [None] * len(rollouts))  # type: ignore[method-assign]
    negative_only = [rollouts[1]]
    before = [p.detach().clone() for p in model.parameters()]
    updater.step(negative_only, advantages=[-1.0])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    updater.config.clip_c = None  # without it the huge ratio drives a large update
    updater.step(negative_only, advantages=[-1.0])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_logprobs_without_the_padding_mask_and_from_a_start_position() -> None:
    from trainers.logprobs import causal_only

    model = tiny_qwen2(seed=13)
    long = _rollout(PROMPT, list(range(300, 340)) + [2], [1] * 41, 1.0)
    short = _rollout(PROMPT + [77, 78], [400, 401, 2], [1, 1, 1], 0.0)
    ids, attention, mask = collate([rollout_sequence(long), rollout_sequence(short)], 2)
    assert causal_only(attention) is None  # right padding: the mask is dropped
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert causal_only(left) is left
    with torch.no_grad():
        fast, _ = token_logprobs(model, ids, attention, start=len(PROMPT) - 1)
        full = torch.log_softmax(model(input_ids=ids, attention_mask=attention).logits[:, :-1].float(), -1)
        reference = torch.gather(full, -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(fast * mask, reference * mask, atol=1e-5)
    assert fast[:, : len(PROMPT) - 1].abs().sum() == 0  # positions before the start are not computed


def test_on_policy_shortcut_equals_the_recomputed_ratio() -> None:
    class Recomputing(GRPOUpdater):
        on_policy = False  # always take the separate no-grad pass, as verl does

    rollouts = _group([1.0, 0.0, 0.0], seed=14)
    models = []
    for kind in (GRPOUpdater, Recomputing):
        model = tiny_qwen2(seed=15)
        updater = kind(model, torch.optim.SGD(model.parameters(), lr=1.0), None, GRPOConfig(kl_coef=0.0), pad_id=2)
        assert updater.on_policy == (kind is GRPOUpdater)
        stats = updater.step(rollouts)
        models.append((model, stats))
    (a, first), (b, second) = models
    assert first.pg_loss == pytest.approx(second.pg_loss, abs=1e-6) and first.clip_frac == second.clip_frac == 0.0
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


# -- trainer/engine mismatch and truncated importance sampling ------------------------------


def _with_engine_logprobs(model, rollouts: list[Rollout], shift: float = 0.0) -> list[Rollout]:
    """The rollouts with sample log-probs as an engine with the same weights would report them
    (the trainer's own), moved by ``shift``; observation tokens keep 0.0."""
    for rollout in rollouts:
        ids, attention, _ = collate([rollout_sequence(rollout)], 2)
        with torch.no_grad():
            logp, _ = token_logprobs(model, ids, attention)
        start = len(rollout.prompt_ids) - 1
        own = logp[0, start : start + len(rollout.completion_ids)].tolist()
        rollout.sample_logprobs = [lp + shift if m else 0.0 for lp, m in zip(own, rollout.loss_mask)]
    return rollouts


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-8, 0), min_size=1, max_size=20), st.lists(st.floats(-3, 3), min_size=20, max_size=20))
def test_mismatch_terms_by_definition(engine: list[float], moves: list[float]) -> None:
    from trainers.losses import engine_mismatch

    e = torch.tensor(engine, dtype=torch.float64)
    t = e + torch.tensor(moves[: len(engine)], dtype=torch.float64)
    diff, k3 = engine_mismatch(e, t)
    assert torch.allclose(diff, e - t)
    assert torch.allclose(k3, torch.exp(t - e) - (t - e) - 1)
    assert bool((k3 >= -1e-12).all())
    zero_diff, zero_k3 = engine_mismatch(e, e)
    assert float(zero_diff.abs().max()) == 0.0 and float(zero_k3.abs().max()) == 0.0


def test_the_step_logs_the_engine_trainer_gap_on_sampled_tokens_only() -> None:
    model = tiny_qwen2(seed=3)
    rollouts = _group([1.0, 0.0, 1.0, 0.0])
    rollouts[1].loss_mask[2] = 0  # an observation token: excluded
    rollouts[2].meta["replaced_spans"] = [(0, 3)]  # a replaced message: no engine log-prob
    same = _updater(model, lr=0.0).step(_with_engine_logprobs(model, rollouts))
    assert abs(same.extra["mismatch_logp_diff"]) < 1e-5 and abs(same.extra["mismatch_k3"]) < 1e-6
    sampled = sum(sum(r.loss_mask) for r in rollouts) - 3
    assert same.extra["mismatch_tokens"] == sampled
    shifted = _updater(model, lr=0.0).step(_with_engine_logprobs(model, rollouts, shift=-0.5))
    assert shifted.extra["mismatch_logp_diff"] == pytest.approx(-0.5, abs=1e-5)
    assert shifted.extra["mismatch_k3"] == pytest.approx(math.exp(0.5) - 0.5 - 1, abs=1e-5)
    several = _updater(model, lr=0.0, mini_batches=2, ppo_epochs=2).step(_with_engine_logprobs(model, rollouts, -0.5))
    assert several.extra["mismatch_tokens"] == sampled  # each token measured once


def _gradients(model, rollouts: list[Rollout], **config) -> list[torch.Tensor]:
    updater = _updater(model, lr=0.0, sgd=True, **config)
    captured: list[torch.Tensor] = []
    updater.before_clip = lambda mini, sums: captured.extend(  # type: ignore[method-assign]
        p.grad.detach().clone() for p in model.parameters() if p.grad is not None
    )
    updater.step(rollouts)
    return captured


def test_truncated_importance_sampling_weights_the_policy_gradient() -> None:
    """On-policy (ratio 1, no clipping), an engine that gave every sampled token log-prob
    ``trainer + 0.7`` makes each weight exp(−0.7): the gradient is the plain one times that;
    with equal log-probs the weights are 1 and the gradient is the plain one; a cap below
    the ratio truncates it."""
    model = tiny_qwen2(seed=4)
    plain = _gradients(model, _with_engine_logprobs(model, _group([1.0, 0.0, 0.0, 1.0])))
    equal = _gradients(model, _with_engine_logprobs(model, _group([1.0, 0.0, 0.0, 1.0])), tis_cap=2.0)
    weighted = _gradients(model, _with_engine_logprobs(model, _group([1.0, 0.0, 0.0, 1.0]), 0.7), tis_cap=2.0)
    capped = _gradients(model, _with_engine_logprobs(model, _group([1.0, 0.0, 0.0, 1.0]), -0.7), tis_cap=1.5)
    for a, b, c, d in zip(plain, equal, weighted, capped):
        assert torch.allclose(a, b, atol=1e-7)
        assert torch.allclose(a * math.exp(-0.7), c, atol=1e-7)
        assert torch.allclose(a * 1.5, d, atol=1e-6)  # exp(0.7) > 1.5: every weight truncated
    with pytest.raises(ValueError, match="tis_cap needs old_logprobs"):
        _updater(model, tis_cap=2.0, old_logprobs="engine")
