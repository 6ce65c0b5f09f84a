"""GRPO: group-normalised advantages, the dual-clip PPO loss, the k3 KL to a frozen reference.

The math follows verl 0.4 (the paper's trainer, docs/paper-methods.md §4.1), one function per piece so
each can be checked by hand:

* :func:`~trainers.losses.group_advantages` — ``A_i = (r_i − mean_g) / (std_g + ε)`` with the *unbiased* group
  std and ε = 1e-6, broadcast to every trained token of the rollout. A group of one gets mean 0
  and std 1 (verl's rule), so its advantage is ``r/(1+ε)``; a group whose rewards are all equal
  gets 0 everywhere.
* :func:`~trainers.losses.policy_loss_terms` — PPO clip with ratio ``exp(clamp(logp − old, ±20))``, clip range
  [1−ε_low, 1+ε_high], and the dual clip: for ``A < 0`` the per-token loss is capped at
  ``−A·c`` (c = 3).
* :func:`~trainers.losses.low_var_kl` — Schulman's k3 estimator of KL(π‖π_ref) per token,
  ``exp(ref − logp) − (ref − logp) − 1``, with ``ref − logp`` clamped to ±20 and the result to
  [−10, 10] as verl does (the clamps only bite on wildly divergent tokens; they keep a bf16
  overflow from becoming an inf loss).
* Aggregation ("token-mean"): every per-token term is summed over the unmasked tokens of the
  whole *mini-batch* (one optimizer step) and divided by that mini-batch's number of unmasked
  tokens, however it is split into micro-batches for memory. verl 0.4 divides per micro-batch
  and re-weights micro-batches by their share of sequences, which equals this only when all
  micro-batches hold the same number of tokens; the mini-batch form is the one its later
  versions adopted, and it makes the loss independent of the micro-batch split (tested).

:class:`GRPOUpdater` turns a list of :class:`~trainers.types.Rollout` into optimizer steps:
old and reference log-probs (no grad), advantages, then for each mini-batch the micro-batches
(packed by token budget) are forwarded, their loss terms accumulated with the mini-batch
token count as denominator, gradients clipped and AdamW stepped; the learning-rate schedule
advances once per RL step (verl steps its actor scheduler after the whole update, so the
paper's 10 warmup steps are RL steps, i.e. 30 optimizer steps).
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from trainers.batching import (
    accumulation_context,
    collate,
    pack_by_prefix,
    pack_by_tokens,
    zero_backward,
    zero_forward,
)
from trainers.logprobs import (
    LOGIT_CHUNK_TOKENS,
    engine_logprobs,
    first_target,
    rollout_sequence,
    token_logprobs,
)
from trainers.losses import (
    EPSILON,
    engine_mismatch,
    group_advantages,
    low_var_kl,
    masked_sum,
    policy_loss_terms,
    truncated_importance_weights,
)
from trainers.types import Rollout

#: the per-step sums behind the engine/trainer mismatch metrics
MISMATCH_SUMS = ("mismatch_diff", "mismatch_k3", "mismatch_tokens", "tis_weight")


@dataclass
class GRPOConfig:
    """The update's hyper-parameters (defaults: the paper's, docs/paper-methods.md §4.1)."""

    clip_low: float = 0.2
    clip_high: float = 0.2
    clip_c: float | None = 3.0
    kl_coef: float = 1e-4  # 0 disables the reference model
    entropy_coef: float = 0.0
    epsilon: float = EPSILON
    normalize_by_std: bool = True
    mini_batches: int = 1  # optimizer steps per RL step (paper: 60 prompts / 20 = 3)
    ppo_epochs: int = 1
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    micro_batch_tokens: int = 16384
    #: "recompute" (verl: the trainer's own log-probs before the update) or "engine"
    #: (the rollout engine's sampling log-probs)
    old_logprobs: str = "recompute"
    #: truncated importance sampling of the policy gradient by min(π_trainer/π_engine, cap) per
    #: sampled token (0: off); needs old_logprobs = "recompute"
    tis_cap: float = 0.0
    #: compute a group's shared prompt once per micro-batch and reuse its keys and values for
    #: every sample of the group (and for the reference): the same loss and gradient
    shared_prefix: bool = True
    #: positions whose full-vocabulary logits exist at once (trainers/logprobs.py)
    logit_chunk_tokens: int = LOGIT_CHUNK_TOKENS

    @classmethod
    def from_section(
        cls, section: Any, max_grad_norm: float, temperature: float, logit_chunk_tokens: int = LOGIT_CHUNK_TOKENS
    ) -> "GRPOConfig":
        """From a ``[grpo]`` section (:class:`trainers.config.GRPOSection`), field by field by
        name, with the values that live in other sections. A field of this class that the
        section lacks is an error, not a silent default."""
        elsewhere = {"max_grad_norm", "temperature", "logit_chunk_tokens"}
        own = {f.name for f in dataclasses.fields(cls)} - elsewhere
        missing = sorted(own - {f.name for f in dataclasses.fields(section)})
        if missing:
            raise TypeError(f"the [grpo] section has no {', '.join(missing)}")
        values = {name: getattr(section, name) for name in own}
        values["clip_c"] = section.clip_c or None  # 0 in a run file disables the dual clip
        return cls(
            **values, max_grad_norm=max_grad_norm, temperature=temperature, logit_chunk_tokens=logit_chunk_tokens
        )


@dataclass
class StepStats:
    """What one RL step's update measured (means over the step's trained tokens)."""

    pg_loss: float = 0.0
    kl: float = 0.0
    entropy: float = 0.0
    clip_frac: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    trained_tokens: int = 0
    optimizer_steps: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


class GRPOUpdater:
    """Applies GRPO updates to ``model`` from lists of rollouts (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        config: GRPOConfig,
        pad_id: int,
        reference: Any | None = None,
        autocast: Callable[[], Any] | None = None,
        token_sum: Callable[[float], float] | None = None,
        world: int = 1,
        count_max: Callable[[int], int] | None = None,
        sharded: bool = False,
    ) -> None:
        if config.old_logprobs not in ("recompute", "engine"):
            raise ValueError(f"old_logprobs must be 'recompute' or 'engine', got {config.old_logprobs!r}")
        if config.kl_coef > 0 and reference is None:
            raise ValueError("kl_coef > 0 needs a reference model")
        if config.tis_cap and config.old_logprobs != "recompute":
            raise ValueError("tis_cap needs old_logprobs = 'recompute' (with the engine's own, the ratio is 1)")
        if config.tis_cap < 0:
            raise ValueError(f"tis_cap must be >= 0 (0 is off), got {config.tis_cap}")
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.config = config
        self.pad_id = pad_id
        self.reference = reference
        self.autocast = autocast
        #: data parallel: sums a local count over ranks; DDP averages gradients, hence ``world``
        self.token_sum = token_sum or (lambda value: value)
        self.world = world
        #: data parallel: the largest micro-batch count of the ranks (all run that many backwards)
        self.count_max = count_max or (lambda value: value)
        #: FSDP2: every forward of the policy is collective, so no-grad passes are padded to the
        #: ranks' largest count too, and a group's prompt is not shared (its two forwards per
        #: micro-batch would pair FSDP's collectives differently on a rank that pads)
        self.sharded = sharded

    def _context(self) -> Any:
        return self.autocast() if self.autocast is not None else nullcontext()

    def _forward_no_grad(
        self,
        net: Any,
        rollouts: Sequence[Rollout],
        indices: list[int],
        probe: Callable[[list[int], torch.Tensor, int], None] | None = None,
    ) -> torch.Tensor:
        ids, attention, _ = collate([rollout_sequence(rollouts[i]) for i in indices], self.pad_id)
        with torch.no_grad(), self._context():
            hook = (lambda lp, start: probe(indices, lp, start)) if probe is not None else None
            logp, _ = token_logprobs(
                net,
                ids,
                attention,
                self.config.temperature,
                probe=hook,
                start=first_target([rollouts[i] for i in indices]),
                chunk_tokens=self.config.logit_chunk_tokens,
                shared_prefix=self._shared_prefix(rollouts, indices),
            )
        return logp

    def _pack(self, rollouts: Sequence[Rollout], indices: Sequence[int]) -> list[list[int]]:
        """Micro-batches of ``indices`` (positions into it) within the token budget: by shared
        prompt when ``shared_prefix`` is on, else by length."""
        lengths = [len(rollouts[i].input_ids) for i in indices]
        if self.config.shared_prefix and not self.sharded:
            return pack_by_prefix(
                [rollouts[i].prompt_ids[:-1] for i in indices], lengths, self.config.micro_batch_tokens
            )
        return pack_by_tokens(lengths, self.config.micro_batch_tokens)

    def _shared_prefix(self, rollouts: Sequence[Rollout], indices: Sequence[int]) -> int:
        """The prefix length a micro-batch computes once (0: none). The prompt's last token
        stays with the rows: its position scores the first completion token."""
        if not self.config.shared_prefix or self.sharded or len(indices) < 2:
            return 0
        return max(0, len(rollouts[indices[0]].prompt_ids) - 1)

    @property
    def on_policy(self) -> bool:
        """One mini-batch, one epoch, recomputed old log-probs: the ratio is exactly 1 at the
        only update, so the old log-probs are the update's own (detached) and the separate
        no-grad pass verl makes is skipped (TRL does the same when ``num_iterations=1``)."""
        config = self.config
        return config.old_logprobs == "recompute" and config.mini_batches == 1 and config.ppo_epochs == 1

    def precompute(
        self,
        rollouts: Sequence[Rollout],
        probe: Callable[[list[int], torch.Tensor, int], None] | None = None,
        on_policy: bool = False,
    ) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
        """Old-policy and reference log-probs per rollout (1-D over ``input_ids[1:]``; old
        ones are ``None`` when ``on_policy``). ``probe(indices, logprobs, start)`` sees each
        no-grad forward of the policy."""
        lengths = [len(r.input_ids) for r in rollouts]
        old: list[torch.Tensor | None] = [None] * len(rollouts)
        ref: list[torch.Tensor | None] = [None] * len(rollouts)
        was_training = self.model.training
        self.model.train(False)  # dropout off for the no-grad passes
        need_policy = not on_policy and (self.config.old_logprobs == "recompute" or probe is not None)
        try:
            batches = self._pack(rollouts, range(len(rollouts)))
            if self.sharded and need_policy:  # the policy's forwards are collective under FSDP
                for _ in range(self.count_max(len(batches)) - len(batches)):
                    zero_forward(self.model, self.pad_id)
            for batch in batches:
                indices = list(batch)
                if need_policy:  # the module inside DDP: a no-grad pass takes no collective
                    logp = self._forward_no_grad(getattr(self.model, "module", self.model), rollouts, indices, probe)
                if self.reference is not None and self.config.kl_coef > 0:
                    ref_logp = self._forward_no_grad(self.reference, rollouts, indices)
                for row, i in enumerate(indices):
                    n = lengths[i] - 1
                    if on_policy:
                        pass
                    elif self.config.old_logprobs == "recompute":
                        old[i] = logp[row, :n].float()
                    else:
                        old[i] = torch.tensor(
                            [0.0] * (len(rollouts[i].prompt_ids) - 1) + list(rollouts[i].sample_logprobs)
                        )
                    if self.reference is not None and self.config.kl_coef > 0:
                        ref[i] = ref_logp[row, :n].float()
        finally:
            self.model.train(was_training)
        return old, ref

    def step(
        self,
        rollouts: Sequence[Rollout],
        advantages: Sequence[float] | None = None,
        probe: Callable[[list[int], torch.Tensor, int], None] | None = None,
    ) -> StepStats:
        """One RL step: ``ppo_epochs`` passes over ``mini_batches`` mini-batches of the rollouts
        (in order: groups stay together when the count divides evenly)."""
        config = self.config
        if advantages is None:
            advantages = group_advantages(
                [r.reward for r in rollouts],
                [(r.group, r.task_id) for r in rollouts],
                config.epsilon,
                config.normalize_by_std,
            )
        on_policy = self.on_policy
        old, ref = self.precompute(rollouts, probe, on_policy)
        stats = StepStats()
        sums = dict.fromkeys(("pg", "kl", "entropy", "clip", "tokens", *MISMATCH_SUMS), 0.0)
        norms: list[float] = []
        size = math.ceil(len(rollouts) / max(1, config.mini_batches))
        for epoch in range(config.ppo_epochs):
            for start in range(0, len(rollouts), size):
                mini = list(range(start, min(start + size, len(rollouts))))
                # the engine/trainer gap is measured once per token, against the weights that
                # sampled it: the trainer's old log-probs, or (old_logprobs = "engine") the
                # first mini-batch before its optimizer step
                measure = epoch == 0 and (config.old_logprobs == "recompute" or start == 0)
                norm = self._mini_batch_step(
                    rollouts, mini, advantages, old, ref, sums, probe if on_policy else None, measure
                )
                if norm is not None:
                    norms.append(norm)
                    stats.optimizer_steps += 1
        if self.scheduler is not None:
            self.scheduler.step()  # per RL step, as verl's actor (warmup counts RL steps)
        sums = {key: self.token_sum(value) for key, value in sums.items()}  # over the ranks' shards
        tokens = max(sums["tokens"], 1.0)
        stats.pg_loss = sums["pg"] / tokens
        stats.kl = sums["kl"] / tokens
        stats.entropy = sums["entropy"] / tokens
        stats.clip_frac = sums["clip"] / tokens
        stats.grad_norm = sum(norms) / len(norms) if norms else 0.0
        stats.trained_tokens = int(sums["tokens"]) // max(1, config.ppo_epochs)
        stats.lr = getattr(self, "last_lr", float(self.optimizer.param_groups[0]["lr"]))
        sampled = max(sums["mismatch_tokens"], 1.0)
        stats.extra["mismatch_logp_diff"] = sums["mismatch_diff"] / sampled
        stats.extra["mismatch_k3"] = sums["mismatch_k3"] / sampled
        stats.extra["mismatch_tokens"] = sums["mismatch_tokens"]
        if config.tis_cap:
            stats.extra["tis_weight"] = sums["tis_weight"] / sampled
        return stats

    # -- hook points (supervision methods override them; trainers/supervision/updaters.py) --

    def policy_terms(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        advantages: torch.Tensor,
        rows: Sequence[Rollout],
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token policy loss and "was clipped" indicator of one micro-batch (``rows`` are
        its rollouts, in row order). Default: :func:`policy_loss_terms`."""
        config = self.config
        return policy_loss_terms(logp, old_logp, advantages, config.clip_low, config.clip_high, config.clip_c)

    def before_clip(self, mini: Sequence[int], sums: dict[str, float]) -> None:
        """Called once per optimizer step after the mini-batch's gradients are accumulated and
        before they are clipped: extra loss terms add their gradients here. Default: none."""

    def _mini_batch_step(
        self,
        rollouts: Sequence[Rollout],
        mini: list[int],
        advantages: Sequence[float],
        old: list[torch.Tensor | None],
        ref: list[torch.Tensor | None],
        sums: dict[str, float],
        probe: Callable[[list[int], torch.Tensor, int], None] | None = None,
        measure: bool = False,
    ) -> float | None:
        config = self.config
        total = self.token_sum(float(sum(rollouts[i].num_trained_tokens for i in mini)))
        if total == 0:
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train(True)
        batches = self._pack(rollouts, mini)
        # data parallel: every rank runs the same number of backwards, the last one synchronised
        count = self.count_max(len(batches))
        for number in range(count):
            with accumulation_context(self.model, number, count):
                if number >= len(batches):
                    zero_backward(self.model, self.pad_id)
                else:
                    self._micro_batch(
                        rollouts, [mini[j] for j in batches[number]], advantages, old, ref, sums, probe, measure, total
                    )
        self.before_clip(mini, sums)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.last_lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step used
        if torch.isfinite(norm):
            self.optimizer.step()
        # a non-finite gradient skips the step (verl does the same); the schedule advances
        # once per RL step, in :meth:`step`
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _micro_batch(
        self,
        rollouts: Sequence[Rollout],
        indices: list[int],
        advantages: Sequence[float],
        old: list[torch.Tensor | None],
        ref: list[torch.Tensor | None],
        sums: dict[str, float],
        probe: Callable[[list[int], torch.Tensor, int], None] | None,
        measure: bool,
        total: float,
    ) -> None:
        """Forward and backward of one micro-batch (its loss sum scaled by ``world / total``)."""
        config = self.config
        ids, attention, mask = collate([rollout_sequence(rollouts[i]) for i in indices], self.pad_id)
        width = ids.shape[1] - 1
        adv = torch.zeros_like(mask)
        old_logp = torch.zeros_like(mask)
        ref_logp = torch.zeros_like(mask)
        for row, i in enumerate(indices):
            n = len(rollouts[i].input_ids) - 1
            adv[row, :n] = float(advantages[i])
            if old[i] is not None:
                old_logp[row, :n] = old[i][:n]  # type: ignore[index]
            if ref[i] is not None:
                ref_logp[row, :n] = ref[i][:n]  # type: ignore[index]
        assert width == mask.shape[1]
        with self._context():
            hook = (lambda lp, start, indices=indices: probe(indices, lp, start)) if probe is not None else None
            logp, entropy = token_logprobs(
                self.model,
                ids,
                attention,
                config.temperature,
                with_entropy=True,
                start=first_target([rollouts[i] for i in indices]),
                entropy_grad=bool(config.entropy_coef),
                probe=hook,
                chunk_tokens=config.logit_chunk_tokens,
                shared_prefix=self._shared_prefix(rollouts, indices),
            )
        if old[indices[0]] is None:  # on-policy: ratio 1, gradient of logp
            old_logp = logp.detach()
        pg, clipped = self.policy_terms(logp, old_logp, adv, [rollouts[i] for i in indices], mask)
        if measure or config.tis_cap:
            engine_logp, sampled = engine_logprobs([rollouts[i] for i in indices], mask)
            trainer_logp = old_logp if config.old_logprobs == "recompute" else logp.detach()
            if measure:
                diff, k3 = engine_mismatch(engine_logp, trainer_logp)
                sums["mismatch_diff"] += float(masked_sum(diff, sampled))
                sums["mismatch_k3"] += float(masked_sum(k3, sampled))
                sums["mismatch_tokens"] += float(sampled.sum())
            if config.tis_cap:
                weights = truncated_importance_weights(trainer_logp, engine_logp, config.tis_cap)
                weights = torch.where(sampled > 0, weights, torch.ones_like(weights))
                pg = pg * weights
                if measure:
                    sums["tis_weight"] += float(masked_sum(weights, sampled))
        loss = masked_sum(pg, mask)
        kl_sum = torch.zeros(())
        if ref[indices[0]] is not None:
            kl_terms = low_var_kl(logp, ref_logp)
            kl_sum = masked_sum(kl_terms, mask)
            loss = loss + config.kl_coef * kl_sum
        assert entropy is not None
        entropy_sum = masked_sum(entropy, mask)
        if config.entropy_coef:
            loss = loss - config.entropy_coef * entropy_sum
        (loss * (self.world / total)).backward()
        sums["pg"] += float(masked_sum(pg, mask).detach())
        sums["kl"] += float(kl_sum.detach())
        sums["entropy"] += float(entropy_sum.detach())
        sums["clip"] += float(masked_sum(clipped, mask))
        sums["tokens"] += float(mask.sum())
