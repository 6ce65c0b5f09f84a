"""The training loop: SFT or GRPO from one :class:`~trainers.config.TrainConfig`, resumable.

Run folder (``[run] out_dir``)::

    config.json            the resolved configuration (a resumed run must match it)
    metrics.jsonl          one JSON object per step (step 0: validation before training)
    demos.jsonl            SFT: the ground-truth demonstrations (reused on resume)
    rollouts/step_N.jsonl  GRPO: each step's trajectories with their rewards
    checkpoints/step_N/    policy/ (save_pretrained: model + tokenizer) and trainer.pt
                           (optimizer, scheduler, RNG states, step, spike detector)
    final/                 the trained model and tokenizer (``toolenv eval --model RUN/final``)

Data order is a pure function of (seed, step): step s takes positions
``[(s−1)·B, s·B)`` of a stream made of one seeded permutation of the data per epoch, and
rollout sampling seeds are derived from (seed, step, group, sample, message). Together with the
saved optimizer, scheduler and RNG states this makes a resumed run take exactly the steps an
uninterrupted one would (tested bit for bit on a tiny model).

Several GPUs: when ``WORLD_SIZE`` > 1 (``torchrun`` / ``accelerate launch``), each rank plays
and trains on its slice of every step's batch, the model is wrapped in DDP, and the token-mean
denominators are all-reduced so the update equals the single-process one; see
``docs/training.md`` for what is and is not tested.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from trainers.config import TrainConfig
from trainers.monitor import MetricsWriter, ProbeAccumulator, ProbeSpec, SpikeDetector, reward_metrics, structure_rates, validate

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer.pt"


# -- setup ---------------------------------------------------------------------------------


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local)
        return torch.device("cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}") from None


def model_path(spec: str) -> Path:
    if spec in ("", "smollm2"):
        from toolenv.models.smollm2 import ensure_smollm2

        return ensure_smollm2()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"no transformers model at {spec} (expected a folder with config.json)")
    return path


def load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """Model and tokenizer from ``[model] path`` on the configured device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolenv.models.hf import _set_threads

    path = model_path(config.model.path)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[config.model.dtype]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    device = resolve_device(config.model.device)
    if device.type == "cpu":
        _set_threads(torch)
    return model.to(device), tokenizer


def autocast_factory(config: TrainConfig, device: torch.device) -> Callable[[], Any] | None:
    if not config.model.autocast_bf16:
        return None
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def pad_id_of(tokenizer: Any) -> int:
    from trainers.tokenize import end_of_turn_id

    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else end_of_turn_id(tokenizer)


def train_tasks(config: TrainConfig) -> list[Any]:
    from toolenv.data import select_tasks

    data = config.data
    return select_tasks(data.train_categories, data.train_split, limit=data.train_limit or None, seed=config.run.seed)


def val_tasks(config: TrainConfig) -> list[Any]:
    from toolenv.data import select_tasks

    data = config.data
    return select_tasks(data.val_categories, data.val_split, limit=data.val_limit or None, seed=config.run.seed)


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


# -- distributed ---------------------------------------------------------------------------


@dataclass
class Dist:
    """Rank information; a single process is rank 0 of 1."""

    rank: int = 0
    world: int = 1

    @classmethod
    def init(cls, device: torch.device) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world)

    def shard(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.rank:: self.world])

    def sum(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item())

    @property
    def main(self) -> bool:
        return self.rank == 0


# -- checkpoints ---------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    import numpy

    state = {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy

    random.setstate(state["python"])
    numpy.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_policy(model: Any, tokenizer: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    unwrapped = getattr(model, "module", model)
    unwrapped.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_policy_weights(model: Any, folder: Path) -> None:
    """Load weights written by :func:`save_policy` into ``model`` (tied weights allowed)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    if not state:
        raise ValueError(f"{folder} holds no *.safetensors weights")
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or []) | {"lm_head.weight"}
    if unexpected or any(key not in tied for key in missing):
        raise ValueError(f"{folder}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def save_checkpoint(run_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any,
                    extra: dict[str, Any], keep_last: int) -> Path:
    """Write ``checkpoints/step_N`` atomically (a temporary folder renamed at the end)."""
    root = run_dir / CHECKPOINTS
    final = root / f"step_{step:06d}"
    scratch = root / f".step_{step:06d}.partial"
    if scratch.exists():
        shutil.rmtree(scratch)
    save_policy(model, tokenizer, scratch / "policy")
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng_state(), **extra}, scratch / TRAINER_STATE)
    if final.exists():
        shutil.rmtree(final)
    scratch.rename(final)
    if keep_last > 0:
        for old in sorted(root.glob("step_*"))[:-keep_last]:
            shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / CHECKPOINTS).glob("step_*"))
    return found[-1] if found else None


def prepare_run_dir(config: TrainConfig, resume: bool) -> Path:
    run_dir = Path(config.run.out_dir)
    saved = run_dir / "config.json"
    current = config.to_dict()
    if resume:
        if not saved.exists():
            raise ValueError(f"nothing to resume in {run_dir} (no config.json)")
        previous = json.loads(saved.read_text())
        if previous != json.loads(json.dumps(current)):
            changed = sorted(f"[{s}] {k}" for s in current for k in current[s]
                             if previous.get(s, {}).get(k) != json.loads(json.dumps(current[s][k])))
            raise ValueError(f"{run_dir} was started with another configuration (changed: {', '.join(changed) or 'sections'})")
        return run_dir
    if (run_dir / CHECKPOINTS).exists() and any((run_dir / CHECKPOINTS).glob("step_*")):
        raise ValueError(f"{run_dir} already holds checkpoints: resume it with --resume or choose another [run] out_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(current, indent=2))
    return run_dir


# -- progress ------------------------------------------------------------------------------


class StepProgress:
    """One line per step on stderr: step, the headline numbers, time per step and ETA."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.began = time.perf_counter()

    def update(self, step: int, numbers: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = step - self.start
        rate = (time.perf_counter() - self.began) / max(done, 1)
        shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
        sys.stderr.write(f"step {step}/{self.total} {shown} | {rate:.1f} s/step, ETA {rate * (self.total - step):.0f} s\n")
        sys.stderr.flush()


# -- the trainer ---------------------------------------------------------------------------


class Trainer:
    """Runs one configuration. ``model``/``tokenizer`` may be given (tests build a tiny
    model), else they are loaded from ``[model] path``; ``tasks``/``validation`` override the
    configured task selections."""

    def __init__(self, config: TrainConfig, model: Any = None, tokenizer: Any = None,
                 tasks: Sequence[Any] | None = None, validation: Sequence[Any] | None = None,
                 stop_after: int | None = None) -> None:
        self.config = config
        if model is None:
            model, tokenizer = load_policy(config)
        elif tokenizer is None:
            raise ValueError("a given model needs its tokenizer")
        if config.model.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.dist = Dist.init(self.device)
        self.autocast = autocast_factory(config, self.device)
        self.pad_id = pad_id_of(tokenizer)
        self._tasks = list(tasks) if tasks is not None else None
        self._validation = list(validation) if validation is not None else None
        #: stop (as if interrupted) after this step; tests use it to check exact resume
        self.stop_after = stop_after

    # -- shared ---------------------------------------------------------------------------

    def tasks(self) -> list[Any]:
        return self._tasks if self._tasks is not None else train_tasks(self.config)

    def validation_tasks(self) -> list[Any]:
        return self._validation if self._validation is not None else val_tasks(self.config)

    def _optimizer(self, total_steps: int) -> tuple[Any, Any]:
        from trainers.grpo import make_optimizer, warmup_lambda

        optim = self.config.optim
        optimizer = make_optimizer(self.model, optim.lr, (optim.betas[0], optim.betas[1]), optim.weight_decay)
        warmup = int(optim.warmup_ratio * total_steps) if optim.warmup_ratio > 0 else optim.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(warmup, total_steps, optim.schedule))
        return optimizer, scheduler

    def _validate(self, step: int) -> dict[str, float]:
        config = self.config
        tasks = self.validation_tasks()
        if not tasks or not self.dist.main:  # rank 0 validates; the others wait at the next collective
            return {}
        started = time.perf_counter()
        # a progress bar on stderr: the validation before step 1 otherwise runs silently for minutes
        label = "validation before step 1" if step == 0 else f"validation at step {step}"
        metrics, _ = validate(getattr(self.model, "module", self.model), self.tokenizer, tasks, config.data.call_format,
                              config.monitor.val_max_new_tokens, config.rollout.max_prompt_tokens,
                              config.rollout.max_steps_per_turn, progress=label if config.run.progress else None)
        metrics["time/validation_s"] = time.perf_counter() - started
        return metrics

    def _resume_state(self, run_dir: Path, optimizer: Any, scheduler: Any) -> dict[str, Any] | None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            return None
        load_policy_weights(getattr(self.model, "module", self.model), checkpoint / "policy")
        state = torch.load(checkpoint / TRAINER_STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return state

    def run(self, resume: bool = False) -> Path:
        run_dir = prepare_run_dir(self.config, resume) if self.dist.main else Path(self.config.run.out_dir)
        if self.config.run.mode == "sft":
            return self._run_sft(run_dir, resume)
        return self._run_grpo(run_dir, resume)

    def _finish(self, run_dir: Path) -> Path:
        if self.dist.main:
            save_policy(self.model, self.tokenizer, run_dir / "final")
        return run_dir

    def _wrap(self) -> Any:
        if self.dist.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    # -- SFT ------------------------------------------------------------------------------

    def sft_samples(self, run_dir: Path) -> list[Any]:
        from trainers.sft import EndpointReplyWriter, build_demonstrations, build_samples, template_reply

        config = self.config
        reply: Any = template_reply
        if config.sft.reply_endpoint:
            from toolenv.formats import get_codec

            reply = EndpointReplyWriter(config.sft.reply_endpoint, config.sft.reply_model, get_codec(config.data.call_format),
                                        config.sft.reply_temperature)
        demos = build_demonstrations(self.tasks(), config.data.call_format, reply, config.sft.calls_per_message,
                                     config.sft.require_success, cache=run_dir / "demos.jsonl")
        if not demos:
            raise ValueError("no demonstration scored 1: nothing to train on")
        return build_samples(self.tokenizer, [d.messages for d in demos], config.sft.samples, config.sft.max_length)

    def _run_sft(self, run_dir: Path, resume: bool) -> Path:
        from trainers.sft import sft_step

        config = self.config
        samples = self.sft_samples(run_dir)
        batch = min(config.sft.batch_size, len(samples))
        per_epoch = max(1, len(samples) // batch)  # drop_last, as verl's sampler
        total = config.sft.max_steps or config.sft.epochs * per_epoch
        optimizer, scheduler = self._optimizer(total)
        state = self._resume_state(run_dir, optimizer, scheduler) if resume else None
        start = state["step"] if state else 0
        writer = MetricsWriter(run_dir, start if resume else None) if self.dist.main else None
        progress = StepProgress(total, start, config.run.progress and self.dist.main)
        model = self._wrap()
        if start == 0 and config.monitor.val_before_train and config.monitor.val_every:
            self._log(writer, 0, self._validate(0))
        for step in range(start + 1, total + 1):
            began = time.perf_counter()
            indices = self.dist.shard(stream_slice(len(samples), batch, step, config.run.seed))
            stats = sft_step(model, optimizer, scheduler, [samples[i] for i in indices], self.pad_id,
                             config.sft.micro_batch_tokens, config.optim.max_grad_norm, self.autocast,
                             total_targets=self._global_targets([samples[i] for i in indices]), world=self.dist.world)
            metrics: dict[str, Any] = {f"sft/{k}": v for k, v in stats.items()}
            metrics["sft/epoch"] = (step - 1) // per_epoch
            metrics["time/step_s"] = time.perf_counter() - began
            if config.monitor.val_every and step % config.monitor.val_every == 0:
                metrics.update(self._validate(step))
            self._log(writer, step, metrics)
            progress.update(step, {"loss": stats["loss"], "lr": stats["lr"], **_val_headline(metrics)})
            if self._should_save(step, total):
                self._save(run_dir, step, optimizer, scheduler, {})
            if self.stop_after is not None and step >= self.stop_after:
                return run_dir
        return self._finish(run_dir)

    def _global_targets(self, samples: Sequence[Any]) -> float:
        local = float(sum(sample.num_targets - sample.target_mask[0] for sample in samples))
        return self.dist.sum(local)

    # -- GRPO -----------------------------------------------------------------------------

    def make_engine(self) -> Any:
        from trainers.engines import make_engine

        if self.config.rollout.engine == "vllm":
            engine = make_engine("vllm", model_path(self.config.model.path), self.tokenizer,
                                 max_model_len=self.config.rollout.max_prompt_tokens + self.config.rollout.max_response_tokens)
            engine.sync_weights(self.model)
            return engine
        return make_engine("hf", self.model, self.tokenizer)

    def collect(self, engine: Any, task_ids: Sequence[str], step: int) -> list[Any]:
        """``n`` rollouts per task for step ``step`` (seeded by run seed and step)."""
        from trainers.rollout import Budgets, RolloutDriver, default_env_factory
        from trainers.types import SamplingParams

        rollout = self.config.rollout
        sampling = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                                  top_p=rollout.top_p, top_k=rollout.top_k)
        budgets = Budgets(rollout.max_prompt_tokens + rollout.max_response_tokens, rollout.max_messages)
        factory = default_env_factory(self.config.data.call_format, max_steps_per_turn=rollout.max_steps_per_turn)
        driver = RolloutDriver(engine, self.tokenizer, factory, sampling, budgets,
                               seed=(self.config.run.seed * 1_000_003 + step) & 0x7FFFFFFF)
        return driver.run(self.episode_specs(task_ids, step))

    def episode_specs(self, task_ids: Sequence[str], step: int) -> list[Any]:
        """The episodes of step ``step``: ``n`` samples per task, groups in task order. Hook
        point: the synchronous supervision methods attach per-episode replacement and
        generation-only prompt edits here (trainers/supervision/run.py)."""
        from trainers.rollout import EpisodeSpec

        return [EpisodeSpec(task_id, group, sample) for group, task_id in enumerate(task_ids)
                for sample in range(self.config.grpo.n)]

    def make_updater(self, *args: Any, **kwargs: Any) -> Any:
        """The GRPO updater (hook point: supervision methods that change the update return a
        subclass, trainers/supervision/updaters.py)."""
        from trainers.grpo import GRPOUpdater

        return GRPOUpdater(*args, **kwargs)

    def _run_grpo(self, run_dir: Path, resume: bool) -> Path:
        from trainers.grpo import GRPOConfig

        config = self.config
        grpo = config.grpo
        tasks = self.tasks()
        total = grpo.steps
        # the reference is the run's initial weights: copied before any checkpoint is loaded
        reference = None
        if grpo.kl_coef > 0:
            reference = copy.deepcopy(self.model)
            reference.requires_grad_(False)
            reference.train(False)
        optimizer, scheduler = self._optimizer(total)  # the schedule counts RL steps
        detector = SpikeDetector(config.monitor.spike_window, config.monitor.spike_abs, config.monitor.spike_ratio)
        state = self._resume_state(run_dir, optimizer, scheduler) if resume else None
        start = state["step"] if state else 0
        if state and "detector" in state:
            detector.load_state_dict(state["detector"])
        writer = MetricsWriter(run_dir, start if resume else None) if self.dist.main else None
        progress = StepProgress(total, start, config.run.progress and self.dist.main)
        updater = self.make_updater(self._wrap(), optimizer, scheduler,
                              GRPOConfig(grpo.clip_low, grpo.clip_high, grpo.clip_c or None, grpo.kl_coef, grpo.entropy_coef,
                                         grpo.epsilon, grpo.normalize_by_std, grpo.mini_batches, grpo.ppo_epochs,
                                         config.optim.max_grad_norm, config.rollout.temperature, grpo.micro_batch_tokens,
                                         grpo.old_logprobs),
                              self.pad_id, reference, self.autocast, token_sum=self.dist.sum, world=self.dist.world)
        spec = ProbeSpec.build(self.tokenizer, config.data.call_format, config.monitor.probe_opener or None,
                               config.monitor.probe_healthy or None)
        engine = self.make_engine()
        if start == 0 and config.monitor.val_before_train and config.monitor.val_every:
            self._log(writer, 0, self._validate(0))
        for step in range(start + 1, total + 1):
            began = time.perf_counter()
            batch = [tasks[i] for i in stream_slice(len(tasks), grpo.prompts_per_step, step, config.run.seed)]
            mine = self.dist.shard(list(enumerate(batch)))
            rollouts = self.collect(engine, [task.id for _, task in mine], step)
            for rollout in rollouts:  # groups keep their index in the whole step's batch
                rollout.group = mine[rollout.group][0]
            rolled = time.perf_counter()
            probes = ProbeAccumulator(spec, rollouts) if spec is not None else None
            stats = updater.step(rollouts, probe=probes)
            engine.sync_weights(self.model)
            metrics: dict[str, Any] = reward_metrics([r.reward for r in rollouts], [r.group for r in rollouts])
            metrics.update({f"train/{k}": v for k, v in stats.to_dict().items()})
            metrics.update(structure_rates([r.trajectory for r in rollouts if r.trajectory is not None]))
            if probes is not None:
                metrics.update(probes.metrics())
            metrics["rollout/truncated"] = sum(r.truncated for r in rollouts) / max(1, len(rollouts))
            metrics["rollout/response_tokens"] = sum(len(r.completion_ids) for r in rollouts) / max(1, len(rollouts))
            metrics["time/rollout_s"] = rolled - began
            metrics["time/update_s"] = time.perf_counter() - rolled
            warnings = detector.check(metrics)
            if warnings:
                metrics["warning"] = "; ".join(warnings)
                if self.dist.main:
                    sys.stderr.write(f"toolenv: warning at step {step}: control-token probe spike: {metrics['warning']}\n")
            if config.monitor.val_every and step % config.monitor.val_every == 0:
                metrics.update(self._validate(step))
            metrics["time/step_s"] = time.perf_counter() - began
            if config.monitor.rollouts_file and self.dist.main:
                self._write_rollouts(run_dir, step, rollouts)
            self._log(writer, step, metrics)
            progress.update(step, {"reward": metrics["reward/mean"], "kl": stats.kl,
                                   "healthy_call": metrics.get("state/healthy_call", 0.0), **_val_headline(metrics)})
            if self._should_save(step, total):
                self._save(run_dir, step, optimizer, scheduler, {"detector": detector.state_dict()})
            if self.stop_after is not None and step >= self.stop_after:
                return run_dir
        return self._finish(run_dir)

    def _write_rollouts(self, run_dir: Path, step: int, rollouts: Sequence[Any]) -> None:
        folder = run_dir / "rollouts"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"step_{step:06d}.jsonl", "w", encoding="utf-8") as handle:
            for rollout in rollouts:
                record = rollout.trajectory.to_dict() if rollout.trajectory is not None else {}
                record.update(group=rollout.group, sample=rollout.sample, reward=rollout.reward,
                              truncated=rollout.truncated, source=rollout.source)
                handle.write(json.dumps(record, ensure_ascii=False, default=repr) + "\n")

    # -- bookkeeping ----------------------------------------------------------------------

    def _log(self, writer: MetricsWriter | None, step: int, metrics: dict[str, Any]) -> None:
        if writer is not None and metrics:
            writer.write(step, metrics)

    def _should_save(self, step: int, total: int) -> bool:
        every = self.config.checkpoint.save_every
        return step == total or (every > 0 and step % every == 0) or step == self.stop_after

    def _save(self, run_dir: Path, step: int, optimizer: Any, scheduler: Any, extra: dict[str, Any]) -> None:
        if self.dist.main:
            save_checkpoint(run_dir, step, self.model, self.tokenizer, optimizer, scheduler, extra,
                            self.config.checkpoint.keep_last)
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()


def _val_headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"val": metrics["val/mean"]} if "val/mean" in metrics else {}


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run a configuration (the ``toolenv train`` entry point); returns the run folder. On a
    CPU it refuses a configuration that relies on the paper's GPU-sized defaults."""
    from trainers.config import check_cpu_sizes

    if resolve_device(config.model.device).type == "cpu":
        check_cpu_sizes(config)  # before the model is loaded: a one-line error, nothing written
    torch.manual_seed(config.run.seed)
    random.seed(config.run.seed)
    return Trainer(config).run(resume)
