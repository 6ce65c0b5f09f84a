"""The supervision methods as configuration, and the phase plan each one runs.

One dataclass per method, registered by name in :data:`METHODS`; :func:`method_from_dict` reads
one from a recipe table (``{"method": "ops", "replace": 1, ...}``) with one-line errors for an
unknown method or key. :data:`PRESETS` names the paper's variants (``ets_difflr`` is ETS with
an SFT learning rate ten times the RL one).

Schemes (docs/paper-methods.md §5.6):

========== ============== =================================================================
method     scheme         what happens
========== ============== =================================================================
vanilla    —              GRPO only
sft        —              SFT on the ground-truth demonstrations only (the paper's SFT rows)
sft_rl     sequential     SFT on the ground-truth demonstrations of the training tasks, then
                          GRPO from that checkpoint (which is also the KL reference)
ops        synchronous    k of n rollouts per group replaced by the ground-truth trajectory
hbg        synchronous    a hint in the system prompt of k of n rollouts, generation only
sync_joint synchronous    an SFT cross-entropy term on demonstrations added to each RL update
ets        interleaved    RL phases; between them SFT on the demonstrations of the training
                          tasks that failed in the last ``window`` steps of the phase
prs        interleaved    ETS plus SFT on reflections on the policy's own trajectories
========== ============== =================================================================

Each class owns its behaviour (the hooks of :class:`~.method.Method`: phases, episode hooks,
updater, config check, interleaved SFT data), so adding a method is one class here. Its
:meth:`~.method.Method.plan` turns the RL step budget into the phases a run executes; every
interleaved phase starts a fresh optimizer and takes its initial weights as the KL reference,
as the paper's separate runs did.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from trainers.supervision.method import METHODS, EpisodeHooks, Method, Phase, SFTData, choice, positive, register

if TYPE_CHECKING:
    from toolenv.data import Task
    from trainers.config import TrainConfig
    from trainers.supervision.run import SupervisedTrainer

__all__ = [
    "ETS",
    "HBG",
    "METHODS",
    "OPS",
    "PRESETS",
    "PRS",
    "SFTOnly",
    "SFTThenRL",
    "SyncJoint",
    "Vanilla",
    "Method",
    "Phase",
    "method_from_dict",
    "method_names",
    "phase_plan",
]


def _needs_recomputed_logprobs(method: Method, config: "TrainConfig") -> None:
    if config.grpo.old_logprobs != "recompute":
        raise ValueError(
            f'{method.name} needs [grpo] old_logprobs = "recompute" (the update must not use the engine\'s '
            "log-probs of substituted or hinted messages)"
        )


@register
@dataclass(frozen=True)
class Vanilla(Method):
    name: ClassVar[str] = "vanilla"
    scheme: ClassVar[str] = "rl"


@dataclass(frozen=True)
class DemoSFT(Method):
    """Base of the methods that start with SFT on the demonstrations of all training tasks."""

    sft_epochs: int = 3
    sft_lr: float = 1e-5
    sft_warmup_ratio: float = 0.1

    def validate(self) -> None:
        positive("sft_epochs", self.sft_epochs)
        positive("sft_lr", self.sft_lr)

    def sft_phase(self) -> Phase:
        return Phase("sft", 0, epochs=self.sft_epochs, lr=self.sft_lr, warmup_ratio=self.sft_warmup_ratio, data="demos")


@register
@dataclass(frozen=True)
class SFTOnly(DemoSFT):
    """SFT on the demonstrations and no RL: the paper's SFT-only baselines, and in a study
    the reference that tells what the RL phase of ``sft_rl`` changed."""

    name: ClassVar[str] = "sft"
    scheme: ClassVar[str] = "sft"

    def plan(self, rl_steps: int) -> list[Phase]:
        return [self.sft_phase()]


@register
@dataclass(frozen=True)
class SFTThenRL(DemoSFT):
    name: ClassVar[str] = "sft_rl"
    scheme: ClassVar[str] = "sequential"

    def plan(self, rl_steps: int) -> list[Phase]:
        return [self.sft_phase(), Phase("rl", 1, steps=rl_steps, fresh_reference=True)]


@register
@dataclass(frozen=True)
class OPS(Method):
    """Off-policy supervision. ``replace`` rollouts per group are the ground truth;
    ``shaped_loss`` switches their tokens to the shaped off-policy loss (:mod:`.ops`)."""

    name: ClassVar[str] = "ops"
    scheme: ClassVar[str] = "synchronous"
    replace: int = 1
    shaped_loss: bool = False
    gamma: float = 0.1
    off_dual_clip: float = 3.0
    calls_per_message: str = "one"

    def validate(self) -> None:
        if self.replace < 1:
            raise ValueError(f"ops.replace must be at least 1, got {self.replace}")
        positive("gamma", self.gamma)
        choice("calls_per_message", self.calls_per_message, ("one", "all"))

    def check(self, config: "TrainConfig") -> None:
        _needs_recomputed_logprobs(self, config)
        if self.replace >= config.grpo.n:
            raise ValueError(
                f"ops replaces {self.replace} of n={config.grpo.n} rollouts: keep at least one policy sample"
            )

    def episode_hooks(self, trainer: "SupervisedTrainer") -> EpisodeHooks:
        from trainers.supervision.ops import GroundTruthEpisodes

        return GroundTruthEpisodes(self, trainer)

    def updater(self, trainer: "SupervisedTrainer", *args: Any, **kwargs: Any) -> Any:
        if not self.shaped_loss:
            return super().updater(trainer, *args, **kwargs)
        from trainers.supervision.ops import ShapedLossConfig
        from trainers.supervision.updaters import ShapedOPSUpdater

        shaped = ShapedLossConfig(gamma=self.gamma, off_dual_clip=self.off_dual_clip)
        return ShapedOPSUpdater(*args, shaped=shaped, **kwargs)


@register
@dataclass(frozen=True)
class HBG(Method):
    """Hint-based guidance. ``hinted`` rollouts per group see the hint while generating."""

    name: ClassVar[str] = "hbg"
    scheme: ClassVar[str] = "synchronous"
    hinted: int = 2
    source: str = "builtin"  # or "endpoint"
    position: str = "system"  # or "user"
    endpoint: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"

    def validate(self) -> None:
        if self.hinted < 1:
            raise ValueError(f"hbg.hinted must be at least 1, got {self.hinted}")
        choice("source", self.source, ("builtin", "endpoint"))
        choice("position", self.position, ("system", "user"))
        if self.source == "endpoint" and not (self.endpoint and self.model):
            raise ValueError("hbg with source='endpoint' needs endpoint (URL) and model")

    def check(self, config: "TrainConfig") -> None:
        _needs_recomputed_logprobs(self, config)
        if self.hinted > config.grpo.n:
            raise ValueError(f"hbg hints {self.hinted} of n={config.grpo.n} rollouts")

    def episode_hooks(self, trainer: "SupervisedTrainer") -> EpisodeHooks:
        from trainers.supervision.hints import HintedEpisodes

        return HintedEpisodes(self, trainer, trainer.hint_writer or self.hint_writer(trainer.config.data.call_format))

    def hint_writer(self, call_format: str) -> Callable[["Task"], str]:
        """The configured hint source: the built-in hint, or the endpoint's."""
        from toolenv.formats import get_codec
        from trainers.supervision.hints import EndpointHintWriter, builtin_hint

        codec = get_codec(call_format)
        if self.source == "endpoint":
            return EndpointHintWriter(self.endpoint, self.model, codec, api_key=os.environ.get(self.api_key_env))
        return lambda task: builtin_hint(task, codec)


@register
@dataclass(frozen=True)
class SyncJoint(Method):
    """SFT loss added to every RL update: ``loss = L_GRPO + weight · CE(demonstrations)`` on
    ``batch`` demonstration samples per optimizer step."""

    name: ClassVar[str] = "sync_joint"
    scheme: ClassVar[str] = "synchronous"
    weight: float = 0.1
    batch: int = 4
    steps_per_update: int = 1

    def validate(self) -> None:
        positive("weight", self.weight)
        positive("batch", self.batch)
        positive("steps_per_update", self.steps_per_update)

    def updater(self, trainer: "SupervisedTrainer", *args: Any, **kwargs: Any) -> Any:
        from trainers.supervision.updaters import JointSFTUpdater

        samples = trainer.sft_samples(Path(trainer.config.run.out_dir))
        return JointSFTUpdater(
            *args, sft_samples=samples, weight=self.weight, batch=self.batch, seed=trainer.config.run.seed, **kwargs
        )


@dataclass(frozen=True)
class Interleaved(Method):
    """Base of the interleaved methods: RL phases of ``phases`` steps; after each but the
    last, SFT on the demonstrations of the tasks that failed in its last ``window`` steps
    (and whatever :meth:`reflections` adds)."""

    scheme: ClassVar[str] = "interleaved"
    #: the ``Phase.data`` of the SFT phases between the RL phases
    sft_data: ClassVar[str] = "failed_demos"
    phases: tuple[int, ...] = (50, 100, 150)
    window: int = 10
    rule: str = "any"  # or "all": every policy rollout of the task failed in a step
    sft_lr: float = 1e-6  # 1e-6 = the RL lr (ETS); 1e-5 = "differential" (ETS-difflr)
    sft_epochs: int = 2
    sft_warmup_ratio: float = 0.3
    rl_warmup_steps: int = 5
    #: "continue": each RL phase takes the prompts (and sampling seeds) that follow the last
    #: phase's, as one run of sum(phases) steps would. "restart": every RL phase starts the
    #: stream again, so it replays the first phase's prompts: what this trainer did before
    #: 2026-12-04, kept to reproduce those runs
    prompt_stream: str = "continue"

    def validate(self) -> None:
        if len(self.phases) < 1 or any(p < 1 for p in self.phases):
            raise ValueError(f"phases must be positive step counts, got {list(self.phases)}")
        positive("window", self.window)
        choice("rule", self.rule, ("any", "all"))
        choice("prompt_stream", self.prompt_stream, ("continue", "restart"))
        positive("sft_lr", self.sft_lr)
        positive("sft_epochs", self.sft_epochs)

    def plan(self, rl_steps: int) -> list[Phase]:
        """Its own per-phase step counts (their sum is its budget; ``rl_steps`` is unused)."""
        phases: list[Phase] = []
        last = len(self.phases) - 1
        for i, steps in enumerate(self.phases):
            phases.append(
                Phase(
                    "rl",
                    len(phases),
                    steps=steps,
                    warmup_steps=self.rl_warmup_steps,
                    fresh_reference=i > 0,
                    window=self.window if i < last else 0,
                    first_step=1 + sum(self.phases[:i]) if self.prompt_stream == "continue" else 1,
                )
            )
            if i < last:
                phases.append(
                    Phase(
                        "sft",
                        len(phases),
                        epochs=self.sft_epochs,
                        lr=self.sft_lr,
                        warmup_ratio=self.sft_warmup_ratio,
                        data=self.sft_data,
                    )
                )
        return phases

    def decided_keys(self) -> frozenset[str]:
        return super().decided_keys() | {"grpo.steps"}

    def interleaved_sft_data(
        self, rl_dir: Path, rl_phase: Phase, config: "TrainConfig", folder: Path, tasks: Sequence["Task"] | None
    ) -> SFTData:
        """Demonstrations of the tasks that failed in the RL phase's last ``window`` steps
        (read from its ``rollouts/step_N.jsonl`` records), plus :meth:`reflections`."""
        from trainers.records import read_step_records
        from trainers.supervision.ets import erroneous_task_ids
        from trainers.train import train_tasks

        first = rl_phase.steps - rl_phase.window + 1
        rows = read_step_records(rl_dir, first, rl_phase.steps)
        pool = list(tasks) if tasks is not None else train_tasks(config)
        by_id = {task.id: task for task in pool}
        failed = [
            task_id
            for task_id in erroneous_task_ids([r for r, _ in rows], rl_phase.steps, rl_phase.window, self.rule)
            if task_id in by_id
        ]
        info: dict[str, Any] = {"window_records": len(rows), "failed_tasks": len(failed)}
        conversations = self.reflections([row for row in rows if row[0].task_id in by_id], by_id, config, folder, info)
        return [by_id[i] for i in failed], conversations, info

    def reflections(
        self,
        rows: Sequence[tuple[Any, dict[str, Any]]],
        tasks: dict[str, "Task"],
        config: "TrainConfig",
        folder: Path,
        info: dict[str, Any],
    ) -> list[list[dict[str, Any]]]:
        """Extra SFT conversations from the window's records. Default: none."""
        return []


@register
@dataclass(frozen=True)
class ETS(Interleaved):
    """Erroneous trajectory supervision: the interleaved scheme on demonstrations only."""

    name: ClassVar[str] = "ets"


@register
@dataclass(frozen=True)
class PRS(Interleaved):
    """Process reflection supervision: ETS's data plus reflections on the policy's own
    trajectories of the last ``window`` steps (``reflector``: the built-in one or an endpoint
    judge)."""

    name: ClassVar[str] = "prs"
    sft_data: ClassVar[str] = "failed_demos+reflections"
    sft_lr: float = 1e-5
    reflector: str = "builtin"  # or "judge"
    selection: str = "failed"  # "failed": failed policy rollouts; "paper": sample 1 of every group
    max_reflections: int = 600
    per_task: int = 1  # reflections kept per task and phase (the latest first)
    show_ground_truth: bool = False
    error_turn_call: bool = True  # judge only: the second call on the failing turn (generalised scenarios)
    endpoint: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"

    def validate(self) -> None:
        super().validate()
        choice("reflector", self.reflector, ("builtin", "judge"))
        choice("selection", self.selection, ("failed", "paper"))
        positive("max_reflections", self.max_reflections)
        positive("per_task", self.per_task)
        if self.reflector == "judge" and not (self.endpoint and self.model):
            raise ValueError("prs with reflector='judge' needs endpoint (URL) and model")

    def reflections(
        self,
        rows: Sequence[tuple[Any, dict[str, Any]]],
        tasks: dict[str, "Task"],
        config: "TrainConfig",
        folder: Path,
        info: dict[str, Any],
    ) -> list[list[dict[str, Any]]]:
        """Reflections (kept in the SFT phase's ``reflections.jsonl``) on the trajectories
        :func:`~.prs.select_reflection_rollouts` picks."""
        from trainers.supervision.prs import REFLECTIONS_FILE, build_reflections, select_reflection_rollouts

        chosen = select_reflection_rollouts(rows, self)
        folder.mkdir(parents=True, exist_ok=True)
        records = build_reflections(chosen, tasks, self, config.data.call_format, folder / REFLECTIONS_FILE)
        info["reflections"] = len(records)
        return [record["messages"] for record in records]


#: named variants: (method, overrides)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "ets_difflr": ("ets", {"sft_lr": 1e-5}),
    "ops_shaped": ("ops", {"shaped_loss": True}),
}


def method_names() -> list[str]:
    return list(METHODS) + list(PRESETS)


def method_from_dict(data: Mapping[str, Any] | str) -> Method:
    """A method config from a name or a table ``{"method": name, key: value, ...}``; a preset
    name applies its overrides first. One-line ``ValueError`` on unknown names or keys."""
    if isinstance(data, str):
        data = {"method": data}
    data = dict(data)
    name = data.pop("method", None)
    if not isinstance(name, str):
        raise ValueError(f"a method table needs 'method' (one of {', '.join(method_names())})")
    if name in PRESETS:
        base, overrides = PRESETS[name]
        data = {**overrides, **data}
        name = base
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(method_names())}")
    cls = METHODS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown key(s) for method {name}: {', '.join(unknown)}; valid: {', '.join(fields) or '(none)'}"
        )
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = tuple(value)
    method = cls(**data)
    method.validate()
    return method


def phase_plan(method: Method, rl_steps: int) -> list[Phase]:
    """The phases ``method`` runs with a budget of ``rl_steps`` RL steps (:meth:`Method.plan`)."""
    return method.plan(rl_steps)
