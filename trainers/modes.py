"""What one training step does in each ``[run] mode``, and what every mode shares: the data
order, the ranks, the progress line.

:class:`trainers.train.Trainer` runs one loop (resume, metrics, validation, checkpoints,
``stop_after``); a :class:`TrainingMode` supplies its step count, what to set up once the
checkpoint is restored, the step itself and what to save with a checkpoint.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from trainers.grpo import GRPOConfig
from trainers.monitor import ProbeAccumulator, ProbeSpec, SpikeDetector, reward_metrics, structure_rates
from trainers.records import write_step

if TYPE_CHECKING:
    from trainers.train import Trainer


# -- shared by the modes ---------------------------------------------------------------------


def stream_slice(size: int, batch: int, step: int, seed: int) -> list[int]:
    """Indices (into ``range(size)``) of step ``step``'s batch (1-based steps): consecutive
    positions of a stream of per-epoch permutations seeded by (seed, epoch)."""
    out = []
    for position in range((step - 1) * batch, step * batch):
        epoch, offset = divmod(position, size)
        order = list(range(size))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(order[offset])
    return out


@dataclass
class Dist:
    """Rank information and the few collectives the trainer uses; a single process is rank 0
    of 1 and every collective is the identity. Collectives run on the backend's device (cuda
    under NCCL, which refuses CPU tensors; cpu under gloo)."""

    rank: int = 0
    world: int = 1
    backend: str = "none"

    @classmethod
    def init(cls, device: torch.device) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)  # all_gather_object uses the current device under NCCL
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))

    @property
    def device(self) -> torch.device:
        """Where this backend's collectives take their tensors."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def shard(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.rank :: self.world])

    def _reduce(self, value: float, op: str) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
        return float(tensor.item())

    def sum(self, value: float) -> float:
        return self._reduce(value, "SUM")

    def max(self, value: float) -> float:
        return self._reduce(value, "MAX")

    def max_count(self, value: int) -> int:
        """The largest of the ranks' ``value`` (micro-batch counts)."""
        return int(self._reduce(float(value), "MAX"))

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    @property
    def main(self) -> bool:
        return self.rank == 0


class StepProgress:
    """A progress bar of steps on stderr (tqdm): steps done, time per step, ETA, and the step's
    headline numbers (reward, loss, validation) beside it."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            initial=start,
            disable=not enabled,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.0,
            leave=True,
        )

    def update(self, step: int, numbers: dict[str, Any]) -> None:
        shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
        self.bar.set_postfix_str(shown, refresh=False)
        self.bar.update(step - self.bar.n)
        if self.bar.total is not None and self.bar.n >= self.bar.total:
            self.bar.close()


# -- the modes -------------------------------------------------------------------------------


class TrainingMode:
    """One mode's part of the training loop. Built before the optimizer (``total`` sizes its
    schedule); :meth:`start` runs once the checkpoint, if any, is restored."""

    total: int

    def start(self, optimizer: Any, scheduler: Any, state: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def step(self, step: int, began: float) -> dict[str, Any]:
        """Train step ``step`` (``began``: its start time); returns its metrics."""
        raise NotImplementedError

    def close_step(self, step: int, metrics: dict[str, Any], began: float) -> None:
        """After the step's validation, before its metrics are written."""

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The numbers of the progress line."""
        return {}

    def checkpoint_extra(self) -> dict[str, Any]:
        """What this mode saves in ``trainer.pt`` besides the shared state."""
        return {}

    def close(self) -> None:
        """After the run (or when it stops): free what the mode built (its rollout engine)."""


class SFTMode(TrainingMode):
    """Supervised fine-tuning on the trainer's SFT samples, ``[sft] batch_size`` per step."""

    def __init__(self, trainer: "Trainer", run_dir: Path) -> None:
        self.trainer = trainer
        sft = trainer.config.sft
        self.samples = trainer.sft_samples(run_dir)
        self.batch = min(sft.batch_size, len(self.samples))
        self.per_epoch = max(1, len(self.samples) // self.batch)  # drop_last, as verl's sampler
        self.total = sft.max_steps or sft.epochs * self.per_epoch

    def start(self, optimizer: Any, scheduler: Any, state: dict[str, Any] | None) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        self.model = self.trainer.wrapped_model()

    def step(self, step: int, began: float) -> dict[str, Any]:
        from trainers.sft import sft_step

        trainer, config = self.trainer, self.trainer.config
        indices = trainer.dist.shard(stream_slice(len(self.samples), self.batch, step, config.run.seed))
        chosen = [self.samples[i] for i in indices]
        stats = sft_step(
            self.model,
            self.optimizer,
            self.scheduler,
            chosen,
            trainer.pad_id,
            config.sft.micro_batch_tokens,
            config.optim.max_grad_norm,
            trainer.autocast,
            total_targets=self._global_targets(chosen),
            world=trainer.dist.world,
            token_sum=trainer.dist.sum,
            count_max=trainer.dist.max_count,
            chunk_tokens=config.model.logit_chunk_tokens,
        )
        metrics: dict[str, Any] = {f"sft/{k}": v for k, v in stats.items()}
        metrics["sft/epoch"] = (step - 1) // self.per_epoch
        metrics["time/step_s"] = time.perf_counter() - began  # the SFT step time leaves validation out
        return metrics

    def _global_targets(self, samples: Sequence[Any]) -> float:
        local = float(sum(sample.num_targets - sample.target_mask[0] for sample in samples))
        return self.trainer.dist.sum(local)

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"loss": metrics["sft/loss"], "lr": metrics["sft/lr"]}


class GRPOMode(TrainingMode):
    """GRPO: each step plays ``[grpo] n`` rollouts of ``prompts_per_step`` tasks and updates."""

    def __init__(self, trainer: "Trainer", run_dir: Path) -> None:
        self.trainer, self.run_dir = trainer, run_dir
        config = trainer.config
        self.tasks = trainer.tasks()
        self.total = config.grpo.steps  # the schedule counts RL steps
        # the reference is the run's initial weights: copied before any checkpoint is loaded
        # (none when the KL coefficient is 0; bf16 weights halve its memory: it is never
        # trained, and under bf16 autocast its forward runs in bf16 anyway)
        self.reference = None
        if config.grpo.kl_coef > 0:
            self.reference = copy.deepcopy(trainer.model)
            if config.grpo.reference_dtype == "bfloat16":
                self.reference.to(torch.bfloat16)
            self.reference.requires_grad_(False)
            self.reference.train(False)
        monitor = config.monitor
        self.detector = SpikeDetector(monitor.spike_window, monitor.spike_abs, monitor.spike_ratio)
        self.rollouts: list[Any] = []

    def start(self, optimizer: Any, scheduler: Any, state: dict[str, Any] | None) -> None:
        trainer, config = self.trainer, self.trainer.config
        if state and "detector" in state:
            self.detector.load_state_dict(state["detector"])
        update = GRPOConfig.from_section(
            config.grpo,
            max_grad_norm=config.optim.max_grad_norm,
            temperature=config.rollout.temperature,
            logit_chunk_tokens=config.model.logit_chunk_tokens,
        )
        self.updater = trainer.make_updater(
            trainer.wrapped_model(),
            optimizer,
            scheduler,
            update,
            trainer.pad_id,
            self.reference,
            trainer.autocast,
            token_sum=trainer.dist.sum,
            world=trainer.dist.world,
            count_max=trainer.dist.max_count,
            sharded=trainer.fsdp,
        )
        self.probe_spec = ProbeSpec.build(
            trainer.tokenizer,
            config.data.call_format,
            config.monitor.probe_opener or None,
            config.monitor.probe_healthy or None,
        )
        self.engine = trainer.make_engine()

    def step(self, step: int, began: float) -> dict[str, Any]:
        trainer, config = self.trainer, self.trainer.config
        # the step in the whole run's stream: a later RL phase of ETS or PRS takes the next
        # prompts and sampling seeds, not the first phase's again
        stream_step = step + config.grpo.first_step - 1
        picked = stream_slice(len(self.tasks), config.grpo.prompts_per_step, stream_step, config.run.seed)
        mine = trainer.dist.shard(list(enumerate(self.tasks[i] for i in picked)))
        # groups keep their index in the whole step's batch (it seeds their sampling), so
        # the episodes do not depend on how the batch is sharded
        rollouts = trainer.collect(self.engine, [task.id for _, task in mine], stream_step, groups=[g for g, _ in mine])
        rolled = time.perf_counter()
        probes = ProbeAccumulator(self.probe_spec, rollouts) if self.probe_spec is not None else None
        asleep = config.rollout.vllm_sleep and hasattr(self.engine, "sleep")
        if asleep:  # the update gets the GPU memory vLLM holds
            self.engine.sleep()
        stats = self.updater.step(rollouts, probe=probes)
        if asleep:
            self.engine.wake()
        self.engine.sync_weights(trainer.engine_model())
        # every rank's episodes (and probe values), in the single-process order
        keep_ids = trainer.config.monitor.rollout_ids
        shards = trainer.dist.gather(
            ([Episode.of(r, keep_ids) for r in rollouts], probes.values if probes is not None else None)
        )
        episodes = sorted((e for shard, _ in shards for e in shard), key=lambda e: (e.group, e.sample))
        if probes is not None:
            probes.values = {name: [v for _, values in shards for v in values[name]] for name in probes.values}
        metrics = rollout_metrics(episodes, stats.to_dict(), probes)
        metrics["time/rollout_s"] = rolled - began
        metrics["time/update_s"] = time.perf_counter() - rolled
        self._check_spike(step, metrics)
        self.rollouts = episodes
        return metrics

    def close(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None and hasattr(engine, "close"):
            engine.close()

    def _check_spike(self, step: int, metrics: dict[str, Any]) -> None:
        warnings = self.detector.check(metrics)
        if warnings:
            metrics["warning"] = "; ".join(warnings)
            if self.trainer.dist.main:
                sys.stderr.write(f"toolenv: warning at step {step}: control-token probe spike: {metrics['warning']}\n")

    def close_step(self, step: int, metrics: dict[str, Any], began: float) -> None:
        metrics["time/step_s"] = time.perf_counter() - began  # the GRPO step time counts its validation
        if self.trainer.config.monitor.rollouts_file and self.trainer.dist.main:
            write_step(self.run_dir, step, self.rollouts)

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "reward": metrics["reward/mean"],
            "kl": metrics["train/kl"],
            "healthy_call": metrics.get("state/healthy_call", 0.0),
        }

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"detector": self.detector.state_dict()}


def rollout_metrics(
    rollouts: Sequence[Any], update: dict[str, float], probes: ProbeAccumulator | None
) -> dict[str, Any]:
    """A GRPO step's metrics from its rollouts and the update's statistics."""
    metrics: dict[str, Any] = reward_metrics([r.reward for r in rollouts], [r.group for r in rollouts])
    metrics.update({f"train/{k}": v for k, v in update.items()})
    metrics.update(structure_rates([r.trajectory for r in rollouts if r.trajectory is not None]))
    if probes is not None:
        metrics.update(probes.metrics())
    metrics["rollout/truncated"] = sum(r.truncated for r in rollouts) / max(1, len(rollouts))
    metrics["rollout/response_tokens"] = sum(len(r.completion_ids) for r in rollouts) / max(1, len(rollouts))
    return metrics


@dataclass
class Episode:
    """What a step's metrics and ``rollouts/step_N.jsonl`` record read from a rollout (a
    :class:`~trainers.types.Rollout` without its tokens, except the completion's length, and
    the trained ids only when ``[monitor] rollout_ids`` asks for them): small enough to gather
    from every rank."""

    task_id: str
    group: int
    sample: int
    reward: float
    trajectory: Any
    truncated: bool
    source: str
    completion_ids: range
    #: ``prompt_ids``, ``completion_ids``, ``loss_mask`` of the rollout (None unless kept)
    ids: dict[str, list[int]] | None = None

    @classmethod
    def of(cls, rollout: Any, keep_ids: bool = False) -> "Episode":
        ids = None
        if keep_ids:
            ids = {
                "prompt_ids": list(rollout.prompt_ids),
                "completion_ids": list(rollout.completion_ids),
                "loss_mask": list(rollout.loss_mask),
            }
        return cls(
            rollout.task_id,
            rollout.group,
            rollout.sample,
            rollout.reward,
            rollout.trajectory,
            rollout.truncated,
            rollout.source,
            range(len(rollout.completion_ids)),
            ids,
        )


MODES: dict[str, type[TrainingMode]] = {"sft": SFTMode, "grpo": GRPOMode}
