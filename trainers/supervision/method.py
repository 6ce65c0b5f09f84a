"""What a supervision method is to the trainer: the :class:`Method` base with its default
behaviour, the :class:`Phase` a run is made of, and the registry of method names.

A method is a frozen dataclass (its fields are the recipe's keys) that owns everything it
changes, so adding one is one class in :mod:`.schedule` decorated with :func:`register`:

* :meth:`Method.validate` — its own settings; :meth:`Method.check` — against a training config;
* :meth:`Method.plan` — the phases it runs; :meth:`Method.decided_keys` — the config keys those
  phases set (so a CPU-size check does not ask the user for them);
* :meth:`Method.episode_hooks` — edits of each RL step's episodes (OPS, HBG);
* :meth:`Method.updater` — the GRPO updater (OPS's shaped loss, the joint SFT loss);
* :meth:`Method.interleaved_sft_data` — the SFT data after an RL phase (ETS, PRS).

Nothing here imports torch: the behaviour's modules are imported when a hook runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence, TypeVar

if TYPE_CHECKING:
    from toolenv.data import Task
    from trainers.config import TrainConfig
    from trainers.supervision.run import SupervisedTrainer

#: the SFT data of an interleaved SFT phase: (tasks whose demonstrations are trained on,
#: extra SFT conversations, what to record in the phase's ``phase.json``)
SFTData = tuple[list["Task"], list[list[dict[str, Any]]], dict[str, Any]]


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
    first_step: int = 1  # RL: the run's RL step that this phase's step 1 is ([grpo] first_step)

    @property
    def name(self) -> str:
        return f"{self.index:02d}-{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class EpisodeHooks:
    """Per-method edits of an RL step's episodes. Default: none."""

    def edit(self, specs: list[Any]) -> None:
        """Change the step's :class:`~trainers.rollout.EpisodeSpec` list in place."""

    def after_collect(self, rollouts: Sequence[Any]) -> None:
        """Look at the step's rollouts once they are played."""


@dataclass(frozen=True)
class Method:
    """Base of the method configs, and the default behaviour: GRPO only."""

    name: ClassVar[str] = ""
    scheme: ClassVar[str] = ""

    def validate(self) -> None:
        """Raise ``ValueError`` (one line) for inconsistent settings."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"method": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}

    def plan(self, rl_steps: int) -> list[Phase]:
        """The phases this method runs with a budget of ``rl_steps`` RL steps."""
        return [Phase("rl", 0, steps=rl_steps)]

    def decided_keys(self) -> frozenset[str]:
        """``section.key`` names of the training config that the phases set themselves."""
        return frozenset({"sft.epochs"})

    def check(self, config: "TrainConfig") -> None:
        """One-line ``ValueError`` when this method cannot run with ``config``."""

    def episode_hooks(self, trainer: "SupervisedTrainer") -> EpisodeHooks:
        return EpisodeHooks()

    def updater(self, trainer: "SupervisedTrainer", *args: Any, **kwargs: Any) -> Any:
        """The GRPO updater (arguments as :class:`~trainers.grpo.GRPOUpdater`'s)."""
        from trainers.grpo import GRPOUpdater

        return GRPOUpdater(*args, **kwargs)

    def interleaved_sft_data(
        self, rl_dir: Path, rl_phase: Phase, config: "TrainConfig", folder: Path, tasks: Sequence["Task"] | None
    ) -> SFTData:
        """The SFT data of an SFT phase that follows the RL phase ``rl_phase`` (run in
        ``rl_dir``); only methods whose :meth:`plan` has such phases implement it."""
        raise ValueError(f"{self.name} has no SFT phase after an RL phase")


#: method name → class, in the order the classes are registered (the order errors list them)
METHODS: dict[str, type[Method]] = {}

M = TypeVar("M", bound=type[Method])


def register(cls: M) -> M:
    """Make a method class known by its ``name``."""
    if cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be positive, got {value}")


def choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(valid)}")
