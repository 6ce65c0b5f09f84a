"""The shaped off-policy loss of OPS, against hand-computed values and the GRPO loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.losses import policy_loss_terms
from trainers.supervision.ops import ShapedLossConfig, shaped_policy_loss, shaped_token_losses

GAMMA = 0.1


def _grad(p: float, advantage: float, off: bool, old_p: float | None = None) -> tuple[float, float]:
    """Loss and d loss / d logp for one token of probability ``p``."""
    logp = torch.tensor([[math.log(p)]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[math.log(old_p if old_p is not None else p)]], dtype=torch.float64)
    loss = shaped_token_losses(logp, old, torch.tensor([advantage], dtype=torch.float64), torch.tensor([off]))
    loss.sum().backward()
    return float(loss.detach()), float(logp.grad)


def test_off_policy_positive_advantage_uses_the_shaped_probability_with_full_gradient() -> None:
    # f(p) = p / (p + 0.1); d(-A f)/d logp = -A * p * 0.1 / (p + 0.1)^2
    for p in (0.05, 0.5, 0.95):
        loss, grad = _grad(p, 1.0, True)
        assert loss == pytest.approx(-p / (p + GAMMA))
        assert grad == pytest.approx(-p * GAMMA / (p + GAMMA) ** 2)
    loss, grad = _grad(0.5, 2.0, True)
    assert (loss, grad) == (pytest.approx(-2 * 0.5 / 0.6), pytest.approx(-2 * 0.5 * 0.1 / 0.36))


def test_off_policy_negative_advantage_is_clipped_below_one_minus_epsilon() -> None:
    # A < 0: loss = |A| * max(f(p), 0.8): constant (no gradient) while f(p) < 0.8, i.e. p < 0.4
    loss, grad = _grad(0.1, -1.0, True)
    assert (loss, grad) == (pytest.approx(0.8), 0.0)
    loss, grad = _grad(0.5, -1.0, True)  # f = 0.8333 > 0.8
    assert loss == pytest.approx(0.5 / 0.6)
    assert grad == pytest.approx(0.5 * 0.1 / 0.36)


def test_off_policy_loss_ignores_the_old_log_probs() -> None:
    assert _grad(0.5, 1.0, True, old_p=0.01) == _grad(0.5, 1.0, True, old_p=0.99)


def test_unclipped_variant_is_the_plain_shaped_objective() -> None:
    logp = torch.log(torch.tensor([[0.1]]))
    loss = shaped_token_losses(logp, logp, torch.tensor([-1.0]), torch.tensor([True]), ShapedLossConfig(off_clip=False))
    assert float(loss) == pytest.approx(0.1 / 0.2)


def test_on_policy_tokens_get_the_dual_clip_ppo_loss() -> None:
    # ratio 2 with A = -1: PPO gives max(2, 1.2) = 2, the dual clip caps it at 3 (not binding);
    # ratio 5: capped at 3
    for ratio, expected in ((2.0, 2.0), (5.0, 3.0), (0.5, 0.8)):
        loss, _ = _grad(0.5, -1.0, False, old_p=0.5 / ratio)
        assert loss == pytest.approx(expected)
    loss, grad = _grad(0.5, 1.0, False, old_p=0.25)  # ratio 2, A > 0: clipped at 1.2, no gradient
    assert (loss, grad) == (pytest.approx(-1.2), 0.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_without_off_policy_rows_it_is_the_grpo_loss(rows: int, width: int, seed: int) -> None:
    """Differential: with no flagged trajectory the per-token losses equal trainers.grpo's."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, width, generator=g, dtype=torch.float64) * 3
    old = -torch.rand(rows, width, generator=g, dtype=torch.float64) * 3
    adv = torch.randn(rows, generator=g, dtype=torch.float64)
    ours = shaped_token_losses(logp, old, adv, torch.zeros(rows, dtype=torch.bool))
    theirs, _ = policy_loss_terms(logp, old, adv.unsqueeze(-1).expand_as(logp), 0.2, 0.2, 3.0)
    torch.testing.assert_close(ours, theirs)


def test_trajectory_flags_broadcast_over_tokens_and_token_mean_aggregates() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], dtype=torch.float64))
    old = torch.log(torch.tensor([[0.25, 0.25, 0.25], [0.25, 0.25, 0.25]], dtype=torch.float64))
    adv = torch.tensor([1.0, 1.0], dtype=torch.float64)
    flags = torch.tensor([True, False])
    per_row = shaped_token_losses(logp, old, adv, flags)
    per_token = shaped_token_losses(logp, old, adv, flags.unsqueeze(-1).expand(2, 3))
    torch.testing.assert_close(per_row, per_token)
    assert per_row[0].tolist() == pytest.approx([-0.5 / 0.6] * 3) and per_row[1].tolist() == pytest.approx([-1.2] * 3)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, metrics = shaped_policy_loss(logp, old, adv, mask, flags)
    assert float(loss) == pytest.approx((2 * -0.5 / 0.6 - 1.2) / 3)
    assert metrics["ops/off_policy_token_fraction"] == pytest.approx(2 / 3)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="gamma"):
        ShapedLossConfig(gamma=0)
    with pytest.raises(ValueError, match="greater than 1"):
        ShapedLossConfig(off_dual_clip=1.0)
