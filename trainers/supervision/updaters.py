"""GRPO updaters for the synchronous methods that change the update itself.

:class:`ShapedOPSUpdater`
    OPS with the shaped off-policy loss: tokens of substituted (ground-truth) messages get
    :func:`~trainers.supervision.ops.shaped_token_losses`' off-policy branch, sampled tokens the
    ordinary dual-clip PPO loss. The flag is per token, from the rollout's
    ``meta["replaced_spans"]``, so a trajectory that is only partly substituted is handled too.
:class:`JointSFTUpdater`
    The synchronous joint loss: every optimizer step adds ``weight · CE`` of a batch of
    ground-truth demonstration samples (token-mean over their targets) to the GRPO loss before
    the gradient is clipped, so ``∇ = ∇L_GRPO + weight · ∇L_SFT`` in one AdamW step. The
    demonstration batches walk through a seeded permutation of the samples (a pure function of
    AdamW's step count, which checkpoints restore, so resumed runs see the same batches).

Both use the two additive hook points of :class:`~trainers.grpo.GRPOUpdater`:
``policy_terms`` (the per-token policy loss) and ``before_clip`` (extra gradient terms).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

from trainers.batching import collate, pack_by_tokens, pad_right
from trainers.grpo import GRPOUpdater, StepStats
from trainers.losses import policy_loss_terms
from trainers.supervision.ops import ShapedLossConfig, shaped_token_losses
from trainers.types import Rollout


def replaced_token_flags(rows: Sequence[Rollout], width: int) -> torch.Tensor:
    """``[B, width]`` booleans: loss position ``p`` (which scores input token ``p+1``) belongs
    to a substituted message of row ``b``."""
    flags = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, rollout in enumerate(rows):
        offset = len(rollout.prompt_ids) - 1  # completion index j is loss position offset + j
        for start, end in rollout.meta.get("replaced_spans", ()):
            flags[b, max(0, offset + start) : max(0, min(width, offset + end))] = True
    return flags


class ShapedOPSUpdater(GRPOUpdater):
    """GRPO with the shaped off-policy loss on substituted tokens (see the module docstring)."""

    def __init__(self, *args: Any, shaped: ShapedLossConfig = ShapedLossConfig(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shaped = shaped
        self._off_tokens = 0.0

    def policy_terms(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        advantages: torch.Tensor,
        rows: Sequence[Rollout],
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.config
        shaped = ShapedLossConfig(
            self.shaped.gamma,
            config.clip_low,
            config.clip_high,
            config.clip_c or 1e9,
            self.shaped.off_dual_clip,
            self.shaped.off_clip,
        )
        flags = replaced_token_flags(rows, logp.shape[1]).to(logp.device)
        loss = shaped_token_losses(logp, old_logp, advantages, flags, shaped)
        _, clipped = policy_loss_terms(
            logp.detach(), old_logp, advantages, config.clip_low, config.clip_high, config.clip_c
        )
        if mask is not None:
            self._off_tokens += float((flags.float() * mask).sum())
        return loss, torch.where(flags, torch.zeros_like(clipped), clipped)

    def step(self, rollouts: Sequence[Rollout], *args: Any, **kwargs: Any) -> StepStats:
        self._off_tokens = 0.0
        stats = super().step(rollouts, *args, **kwargs)
        tokens = max(1, stats.trained_tokens * max(1, self.config.ppo_epochs))
        # the ranks' off-policy tokens over the step's trained tokens (already summed over the ranks)
        stats.extra["ops/off_policy_token_fraction"] = self.token_sum(self._off_tokens) / tokens
        return stats


class JointSFTUpdater(GRPOUpdater):
    """GRPO plus ``weight`` × an SFT cross-entropy term in every optimizer step."""

    def __init__(
        self,
        *args: Any,
        sft_samples: Sequence[Any] = (),
        weight: float = 0.1,
        batch: int = 4,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not sft_samples:
            raise ValueError("the joint SFT loss needs at least one demonstration sample")
        self.sft_samples = list(sft_samples)
        self.weight = float(weight)
        self.batch = max(1, min(int(batch), len(self.sft_samples)))
        self.seed = seed
        self._sums = {"loss": 0.0, "steps": 0.0}

    def joint_batch(self, update: int) -> list[Any]:
        """The demonstration samples of optimizer step ``update`` (0-based)."""
        size = len(self.sft_samples)
        out = []
        for position in range(update * self.batch, (update + 1) * self.batch):
            epoch, offset = divmod(position, size)
            order = list(range(size))
            random.Random(self.seed * 7_919 + epoch).shuffle(order)
            out.append(self.sft_samples[order[offset]])
        return out

    def before_clip(self, mini: Sequence[int], sums: dict[str, float]) -> None:
        from trainers.sft import sft_loss_sum

        samples = self.joint_batch(self.optimizer_steps_taken())
        total = float(sum(s.num_targets - s.target_mask[0] for s in samples))
        if total == 0:
            return
        loss_sum = 0.0
        for indices in pack_by_tokens([len(s.input_ids) for s in samples], self.config.micro_batch_tokens):
            ids, attention, _ = collate([(samples[i].input_ids, samples[i].target_mask) for i in indices], self.pad_id)
            mask = pad_right([samples[i].target_mask for i in indices], 0, ids.dtype, ids.shape[1])  # unshifted
            device = next(self.model.parameters()).device
            with self._context():
                nll, _ = sft_loss_sum(
                    self.model,
                    ids.to(device),
                    attention.to(device),
                    mask.to(device),
                    chunk_tokens=self.config.logit_chunk_tokens,
                )
            (nll * (self.weight / total)).backward()
            loss_sum += float(nll.detach())
        self._sums["loss"] += loss_sum / total
        self._sums["steps"] += 1

    def step(self, rollouts: Sequence[Rollout], *args: Any, **kwargs: Any) -> StepStats:
        self._sums = {"loss": 0.0, "steps": 0.0}
        stats = super().step(rollouts, *args, **kwargs)
        stats.extra["joint/sft_loss"] = self._sums["loss"] / max(1.0, self._sums["steps"])
        stats.extra["joint/weight"] = self.weight
        return stats

    def optimizer_steps_taken(self) -> int:
        """AdamW's own step count (saved and restored with the optimizer, so a resumed run
        continues with the batch an uninterrupted one would use)."""
        for group in self.optimizer.param_groups:
            for parameter in group["params"]:
                state = self.optimizer.state.get(parameter)
                if state and "step" in state:
                    return int(state["step"])
        return 0
