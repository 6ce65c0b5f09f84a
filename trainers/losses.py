"""GRPO's per-token math, one function per piece so each can be checked by hand (the formulas
are in :mod:`trainers.grpo`'s docstring): group-normalised advantages, the dual-clip PPO
terms, the k3 KL, and the token-mean aggregation."""

from __future__ import annotations

from typing import Any, Sequence

import torch

EPSILON = 1e-6


# -- advantages ----------------------------------------------------------------------------


def group_advantages(
    rewards: Sequence[float], groups: Sequence[Any], epsilon: float = EPSILON, normalize_by_std: bool = True
) -> list[float]:
    """Per-rollout GRPO advantages (see the module docstring). ``groups[i]`` names rollout i's
    group (rollouts of the same task in one step share it)."""
    if len(rewards) != len(groups):
        raise ValueError("rewards and groups must have the same length")
    members: dict[Any, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    advantages = [0.0] * len(rewards)
    for indices in members.values():
        values = torch.tensor([float(rewards[i]) for i in indices], dtype=torch.float64)
        if len(indices) == 1:
            mean, std = 0.0, 1.0
        else:
            mean, std = float(values.mean()), float(values.std(unbiased=True))
        for i in indices:
            centred = float(rewards[i]) - mean
            advantages[i] = centred / (std + epsilon) if normalize_by_std else centred
    return advantages


# -- per-token terms -----------------------------------------------------------------------


def policy_loss_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_c: float | None = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token dual-clip PPO loss and a per-token "was clipped" indicator (same shapes)."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = (clipped > unclipped).float()
    if clip_c is not None:
        if clip_c <= 1.0:
            raise ValueError(f"dual-clip constant must be > 1, got {clip_c}")
        capped = torch.minimum(loss, -advantages * clip_c)
        loss = torch.where(advantages < 0, capped, loss)
    return loss, was_clipped


def low_var_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π‖π_ref) (verl's ``low_var_kl``, clamped as it is)."""
    log_ratio = torch.clamp(ref_logp - logp, -20.0, 20.0)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)


def engine_mismatch(engine_logp: torch.Tensor, trainer_logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token gap between the rollout engine and the trainer on the sampled tokens:
    ``engine − trainer`` log-prob, and the k3 estimate of KL(π_engine‖π_trainer),
    ``exp(t − e) − (t − e) − 1`` (``t − e`` clamped to ±20), from samples of the engine."""
    log_ratio = torch.clamp(trainer_logp - engine_logp, -20.0, 20.0)
    return engine_logp - trainer_logp, torch.exp(log_ratio) - log_ratio - 1.0


def truncated_importance_weights(trainer_logp: torch.Tensor, engine_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling (Yao et al. 2025, verl's ``tis_imp_ratio_cap``): per
    token ``min(π_trainer/π_engine, cap)``, detached; corrects the policy gradient for tokens
    the engine sampled with other probabilities than the trainer computes."""
    return torch.exp(torch.clamp(trainer_logp - engine_logp, -20.0, 20.0)).clamp(max=cap).detach()


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum()


def token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the unmasked tokens (0 when there are none)."""
    return masked_sum(values, mask) / mask.sum().clamp(min=1)
