"""Running a supervision method: its phases, each one a resumable training run.

``run_method(config, method, out_dir)`` executes the method's :meth:`~.method.Method.plan`: every phase
is a :class:`~trainers.train.Trainer` run in ``OUT/NN-rl`` or ``OUT/NN-sft`` whose initial
weights are the previous phase's ``final/`` (so each RL phase has a fresh optimizer and takes
its initial weights as the KL reference, as the paper's separate runs did). A phase with a
``final/`` folder (or a ``phase.json`` saying it was skipped) is done and not run again; an
interrupted phase resumes from its last checkpoint. ``OUT/method.json`` records the method,
the phases and the final model.

Per method (docs/paper-methods.md §5):

* RL phases of ``ops`` substitute the ground-truth demonstration for samples ``0..k-1`` of
  every group (rollout driver ``replace`` hook); ``hbg`` puts the task's hint into the
  system prompt of samples ``0..k-1`` for generation only (``prompt_edit`` hook). Both need
  old log-probs recomputed by the trainer (``[grpo] old_logprobs = "recompute"``, the
  default): the engine's log-probs of a substituted message are 0 and those of a hinted one
  are under the hinted prompt, and the update must see neither.
* ``ops`` with ``shaped_loss`` and ``sync_joint`` change the update
  (:mod:`.updaters`).
* SFT phases train on the ground-truth demonstrations (``sft_rl``: of all training tasks;
  ``ets``/``prs``: of the tasks that failed in the last ``window`` steps of the previous RL
  phase, read from its ``rollouts/step_N.jsonl`` records) and, for ``prs``, on reflections on
  the policy's trajectories of those steps (``reflections.jsonl`` in the SFT phase folder).
  An SFT phase with nothing to train on is skipped (recorded in its ``phase.json``).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from toolenv.data import Task
from trainers.config import TrainConfig
from trainers.supervision.method import EpisodeHooks, Method, Phase
from trainers.train import Trainer

PHASE_FILE = "phase.json"
METHOD_FILE = "method.json"


# -- the trainer with the method's hooks ---------------------------------------------------


class SupervisedTrainer(Trainer):
    """A :class:`~trainers.train.Trainer` whose episodes and update follow ``method`` (its
    :meth:`~.method.Method.episode_hooks` and :meth:`~.method.Method.updater`).

    ``sft_tasks`` (SFT phases) chooses whose demonstrations are trained on (default: all
    training tasks); ``extra_conversations`` are added as SFT conversations (reflections);
    ``hint_writer`` replaces HBG's configured hint source (tests)."""

    def __init__(
        self,
        config: TrainConfig,
        method: Method,
        *args: Any,
        sft_tasks: Sequence[Task] | None = None,
        extra_conversations: Sequence[Sequence[dict[str, Any]]] = (),
        hint_writer: Callable[[Task], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, *args, **kwargs)
        self.method = method
        self.sft_tasks = list(sft_tasks) if sft_tasks is not None else None
        self.extra_conversations = [list(c) for c in extra_conversations]
        self.hint_writer = hint_writer
        self._by_id: dict[str, Task] | None = None
        self._episodes: EpisodeHooks | None = None

    def task_by_id(self, task_id: str) -> Task:
        if self._by_id is None:
            self._by_id = {task.id: task for task in self.tasks()}
        return self._by_id[task_id]

    @property
    def episodes(self) -> EpisodeHooks:
        """The method's episode hooks, made on first use (they keep scripts and hints)."""
        if self._episodes is None:
            self._episodes = self.method.episode_hooks(self)
        return self._episodes

    def episode_specs(self, task_ids: Sequence[str], step: int) -> list[Any]:
        specs = super().episode_specs(task_ids, step)
        self.episodes.edit(specs)
        return specs

    def collect(self, engine: Any, task_ids: Sequence[str], step: int, **kwargs: Any) -> list[Any]:
        rollouts = super().collect(engine, task_ids, step, **kwargs)
        self.episodes.after_collect(rollouts)
        return rollouts

    def make_updater(self, *args: Any, **kwargs: Any) -> Any:
        return self.method.updater(self, *args, **kwargs)

    # -- SFT data (ETS, PRS) --------------------------------------------------------------

    def tasks(self) -> list[Any]:
        if self.config.run.mode == "sft" and self.sft_tasks is not None:
            return self.sft_tasks
        return super().tasks()

    def sft_samples(self, run_dir: Path) -> list[Any]:
        from trainers.sft import build_samples

        samples: list[Any] = []
        if self.config.run.mode != "sft" or self.sft_tasks is None or self.sft_tasks:
            samples = super().sft_samples(run_dir)
        if self.extra_conversations:
            samples += build_samples(
                self.tokenizer, self.extra_conversations, "per_message", self.config.sft.max_length
            )
        if not samples:
            raise ValueError("nothing to train on in this SFT phase")
        return samples


# -- phases ------------------------------------------------------------------------------


def phase_config(base: TrainConfig, phase: Phase, out_dir: Path, model_path: str) -> TrainConfig:
    """The configuration of one phase (see the module docstring)."""
    config = copy.deepcopy(base)
    config.run.out_dir = str(out_dir / phase.name)
    config.model.path = model_path
    if phase.kind == "rl":
        config.run.mode = "grpo"
        config.grpo.steps = phase.steps
        config.grpo.first_step = phase.first_step
        if phase.warmup_steps is not None:
            config.optim.warmup_steps = phase.warmup_steps
            config.optim.warmup_ratio = 0.0
        if phase.window:
            config.monitor.rollouts_file = True
    else:
        config.run.mode = "sft"
        config.sft.epochs = phase.epochs
        if phase.lr is not None:
            config.optim.lr = phase.lr
        config.optim.schedule = "cosine"  # the paper's SFT runs: cosine after warmup
        config.optim.betas = [0.9, 0.95]
        config.optim.warmup_ratio = phase.warmup_ratio if phase.warmup_ratio is not None else 0.1
    return config


def _phase_done(folder: Path) -> dict[str, Any] | None:
    marker = folder / PHASE_FILE
    if marker.exists():
        return json.loads(marker.read_text())
    if (folder / "final").is_dir():
        return {"status": "done"}
    return None


def _write_phase(folder: Path, info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PHASE_FILE).write_text(json.dumps(info, indent=2))


def run_method(
    config: TrainConfig,
    method: Method,
    out_dir: str | Path,
    *,
    model: Any = None,
    tokenizer: Any = None,
    tasks: Sequence[Task] | None = None,
    validation: Sequence[Task] | None = None,
    hint_writer: Callable[[Task], str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) every phase of ``method`` into ``out_dir``; returns the final model's
    folder. ``model``/``tokenizer`` (tests) replace ``[model] path`` for the first phase."""
    import torch

    method.check(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda text: None)
    current = config.model.path
    given = model
    summary: list[dict[str, Any]] = []
    last_rl: tuple[Path, Phase] | None = None
    for phase in method.plan(config.grpo.steps):
        folder = out / phase.name
        if phase.kind == "rl":  # read by the next SFT phase, whether this one runs now or ran before
            last_rl = (folder, phase)
        state = _phase_done(folder)
        if state is not None:
            say(f"{method.name}: phase {phase.name} {state['status']}")
            summary.append({**phase.to_dict(), **state})
            if state["status"] == "done":
                current, given = str(folder / "final"), None
            continue
        pconfig = phase_config(config, phase, out, current)
        # rank 0 first: it makes the judge's calls and writes reflections.jsonl, which the other
        # ranks then read back instead of calling the judge again
        extra, skipped = rank_zero_first(
            functools.partial(_interleaved_data, method, phase, last_rl, pconfig, folder, tasks, say)
        )
        if skipped is not None:
            summary.append({**phase.to_dict(), "status": "skipped", **skipped})
            continue
        resume = (folder / "config.json").exists()
        torch.manual_seed(pconfig.run.seed)
        trainer = SupervisedTrainer(
            pconfig,
            method,
            model=given,
            tokenizer=tokenizer if given is not None else None,
            tasks=tasks,
            validation=validation,
            hint_writer=hint_writer,
            **extra,
        )
        say(f"{method.name}: phase {phase.name} ({phase.kind}) {'resumed' if resume else 'started'}")
        trainer.run(resume=resume)
        _write_phase(
            folder,
            {
                "status": "done",
                **(
                    {"sft_tasks": [t.id for t in extra["sft_tasks"]], "reflections": len(extra["extra_conversations"])}
                    if extra
                    else {}
                ),
            },
        )
        summary.append({**phase.to_dict(), "status": "done"})
        current, given = str(folder / "final"), None
    (out / METHOD_FILE).write_text(
        json.dumps({"method": method.to_dict(), "phases": summary, "final": current}, indent=2)
    )
    return Path(current)


def rank_zero_first(work: Callable[[], Any]) -> Any:
    """``work()`` on rank 0, then (after a barrier) on the other ranks, whose calls find what
    rank 0 cached; a single process just calls it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return work()
    result = work() if dist.get_rank() == 0 else None
    dist.barrier()
    if dist.get_rank() != 0:
        result = work()
    dist.barrier()
    return result


def _interleaved_data(
    method: Method,
    phase: Phase,
    last_rl: tuple[Path, Phase] | None,
    config: TrainConfig,
    folder: Path,
    tasks: Sequence[Task] | None,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trainer arguments of an SFT phase after an RL phase (``{}`` for any other phase),
    and, when it has nothing to train on, what its skip records (its ``phase.json`` is written)."""
    if phase.kind != "sft" or phase.data == "demos":
        return {}, None
    assert last_rl is not None, "an interleaved SFT phase follows an RL phase"
    sft_tasks, conversations, info = method.interleaved_sft_data(*last_rl, config, folder, tasks)
    if not sft_tasks and not conversations:
        _write_phase(folder, {"status": "skipped", "reason": "no failed task and no reflection", **info})
        say(f"{method.name}: phase {phase.name} skipped (nothing failed)")
        return {}, info
    say(f"{method.name}: phase {phase.name}: {len(sft_tasks)} failed tasks, {len(conversations)} reflections")
    return {"sft_tasks": sft_tasks, "extra_conversations": conversations}, None
