"""The optimizer and learning-rate schedule of a training run (``[optim]``).

AdamW over the trainable parameters; the schedule is a multiplier per scheduler step: linear
warmup from 0 (verl's ``get_constant_schedule_with_warmup``: step 0 has lr 0), then constant or
cosine decay. GRPO steps the scheduler once per RL step, SFT once per optimizer step, so
``total_steps`` counts the mode's steps.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch


def warmup_lambda(
    warmup_steps: int, total_steps: int | None = None, schedule: str = "constant", min_ratio: float = 0.0
) -> Callable[[int], float]:
    """LR multiplier per optimizer step: linear warmup from 0 over ``warmup_steps`` (verl's
    ``get_constant_schedule_with_warmup``: step 0 has lr 0), then constant or cosine decay to
    ``min_ratio`` at ``total_steps``."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr schedule {schedule!r}; valid: constant, cosine")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if schedule == "constant" or not total_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_optimizer(model: Any, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas, weight_decay=weight_decay
    )


def optimizer_and_schedule(model: Any, optim: Any, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and its LambdaLR schedule from an ``[optim]`` section
    (:class:`trainers.config.OptimSection`); ``warmup_ratio`` > 0 overrides ``warmup_steps``."""
    optimizer = make_optimizer(model, optim.lr, (optim.betas[0], optim.betas[1]), optim.weight_decay)
    warmup = int(optim.warmup_ratio * total_steps) if optim.warmup_ratio > 0 else optim.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(warmup, total_steps, optim.schedule))
    return optimizer, scheduler
