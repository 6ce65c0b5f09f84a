"""The supervision methods as configuration, and the phase plan each one runs.

One dataclass per method, registered by name in :data:`METHODS`; :func:`method_from_dict` reads
one from a recipe table (``{"method": "ops", "replace": 1, ...}``) with one-line errors for an
unknown method or key. :data:`PRESETS` names the paper's variants (``ets_difflr`` is ETS with
an SFT learning rate ten times the RL one).

Schemes (methods notes §5.6):

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

:func:`phase_plan` turns a method and the RL step budget into the list of phases a run
executes; every interleaved phase starts a fresh optimizer and takes its initial weights as
the KL reference, as the paper's separate runs did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class Method:
    """Base of the method configs."""

    name: ClassVar[str] = ""
    scheme: ClassVar[str] = ""

    def validate(self) -> None:
        """Raise ``ValueError`` (one line) for inconsistent settings."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"method": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}


@dataclass(frozen=True)
class Vanilla(Method):
    name: ClassVar[str] = "vanilla"
    scheme: ClassVar[str] = "rl"


@dataclass(frozen=True)
class SFTThenRL(Method):
    name: ClassVar[str] = "sft_rl"
    scheme: ClassVar[str] = "sequential"
    sft_epochs: int = 3
    sft_lr: float = 1e-5
    sft_warmup_ratio: float = 0.1

    def validate(self) -> None:
        _positive("sft_epochs", self.sft_epochs)
        _positive("sft_lr", self.sft_lr)


@dataclass(frozen=True)
class SFTOnly(SFTThenRL):
    """SFT on the demonstrations and no RL: the paper's SFT-only baselines, and in a study
    the reference that tells what the RL phase of ``sft_rl`` changed."""

    name: ClassVar[str] = "sft"
    scheme: ClassVar[str] = "sft"


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
        _positive("gamma", self.gamma)
        _choice("calls_per_message", self.calls_per_message, ("one", "all"))


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
        _choice("source", self.source, ("builtin", "endpoint"))
        _choice("position", self.position, ("system", "user"))
        if self.source == "endpoint" and not (self.endpoint and self.model):
            raise ValueError("hbg with source='endpoint' needs endpoint (URL) and model")


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
        _positive("weight", self.weight)
        _positive("batch", self.batch)
        _positive("steps_per_update", self.steps_per_update)


@dataclass(frozen=True)
class ETS(Method):
    """Erroneous trajectory supervision: RL phases of ``phases`` steps; after each but the
    last, SFT on the demonstrations of the tasks that failed in its last ``window`` steps."""

    name: ClassVar[str] = "ets"
    scheme: ClassVar[str] = "interleaved"
    phases: tuple[int, ...] = (50, 100, 150)
    window: int = 10
    rule: str = "any"  # or "all": every policy rollout of the task failed in a step
    sft_lr: float = 1e-6  # 1e-6 = the RL lr (ETS); 1e-5 = "differential" (ETS-difflr)
    sft_epochs: int = 2
    sft_warmup_ratio: float = 0.3
    rl_warmup_steps: int = 5

    def validate(self) -> None:
        if len(self.phases) < 1 or any(p < 1 for p in self.phases):
            raise ValueError(f"phases must be positive step counts, got {list(self.phases)}")
        _positive("window", self.window)
        _choice("rule", self.rule, ("any", "all"))
        _positive("sft_lr", self.sft_lr)
        _positive("sft_epochs", self.sft_epochs)

    @property
    def total_rl_steps(self) -> int:
        return sum(self.phases)


@dataclass(frozen=True)
class PRS(ETS):
    """Process reflection supervision: ETS plus reflections on the policy's own trajectories
    of the last ``window`` steps (``reflector``: the built-in one or an endpoint judge)."""

    name: ClassVar[str] = "prs"
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
        _choice("reflector", self.reflector, ("builtin", "judge"))
        _choice("selection", self.selection, ("failed", "paper"))
        _positive("max_reflections", self.max_reflections)
        _positive("per_task", self.per_task)
        if self.reflector == "judge" and not (self.endpoint and self.model):
            raise ValueError("prs with reflector='judge' needs endpoint (URL) and model")


METHODS: dict[str, type[Method]] = {m.name: m for m in (Vanilla, SFTOnly, SFTThenRL, OPS, HBG, SyncJoint, ETS, PRS)}
#: named variants: (method, overrides)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "ets_difflr": ("ets", {"sft_lr": 1e-5}),
    "ops_shaped": ("ops", {"shaped_loss": True}),
}


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be positive, got {value}")


def _choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(valid)}")


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
        raise ValueError(f"unknown key(s) for method {name}: {', '.join(unknown)}; valid: {', '.join(fields) or '(none)'}")
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = tuple(value)
    method = cls(**data)
    method.validate()
    return method


@dataclass(frozen=True)
class Phase:
    """One stage of a run. ``kind`` is ``"rl"`` (``steps`` GRPO steps) or ``"sft"``
    (``epochs`` over ``data``: ``"demos"`` = demonstrations of all training tasks,
    ``"failed_demos"`` = those of the tasks that failed at the end of the previous RL phase,
    ``"failed_demos+reflections"`` = the same plus the reflections of that phase)."""

    kind: str
    index: int  # position in the plan
    steps: int = 0
    epochs: int = 0
    lr: float | None = None  # None: the run's own learning rate for this kind
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    data: str = ""
    fresh_reference: bool = False  # the KL reference is this phase's initial weights
    window: int = 0  # RL: record the last `window` steps for the next SFT phase

    @property
    def name(self) -> str:
        return f"{self.index:02d}-{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def phase_plan(method: Method, rl_steps: int) -> list[Phase]:
    """The phases ``method`` runs with a budget of ``rl_steps`` RL steps (interleaved methods
    use their own per-phase step counts, whose sum is their budget)."""
    if isinstance(method, ETS):
        phases: list[Phase] = []
        last = len(method.phases) - 1
        for i, steps in enumerate(method.phases):
            phases.append(Phase("rl", len(phases), steps=steps, warmup_steps=method.rl_warmup_steps,
                                fresh_reference=i > 0, window=method.window if i < last else 0))
            if i < last:
                data = "failed_demos+reflections" if isinstance(method, PRS) else "failed_demos"
                phases.append(Phase("sft", len(phases), epochs=method.sft_epochs, lr=method.sft_lr,
                                    warmup_ratio=method.sft_warmup_ratio, data=data))
        return phases
    if isinstance(method, SFTOnly):
        return [Phase("sft", 0, epochs=method.sft_epochs, lr=method.sft_lr, warmup_ratio=method.sft_warmup_ratio,
                      data="demos")]
    if isinstance(method, SFTThenRL):
        return [Phase("sft", 0, epochs=method.sft_epochs, lr=method.sft_lr, warmup_ratio=method.sft_warmup_ratio,
                      data="demos"),
                Phase("rl", 1, steps=rl_steps, fresh_reference=True)]
    return [Phase("rl", 0, steps=rl_steps)]
