"""Running a supervision method: its phases, each one a resumable training run.

``run_method(config, method, out_dir)`` executes :func:`~.schedule.phase_plan`: every phase
is a :class:`~trainers.train.Trainer` run in ``OUT/NN-rl`` or ``OUT/NN-sft`` whose initial
weights are the previous phase's ``final/`` (so each RL phase has a fresh optimizer and takes
its initial weights as the KL reference, as the paper's separate runs did). A phase with a
``final/`` folder (or a ``phase.json`` saying it was skipped) is done and not run again; an
interrupted phase resumes from its last checkpoint. ``OUT/method.json`` records the method,
the phases and the final model.

Per method (methods notes §5):

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
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from toolenv.data import Task
from toolenv.trajectory import Trajectory
from trainers.config import TrainConfig
from trainers.supervision.ets import RolloutRecord, erroneous_task_ids
from trainers.supervision.schedule import ETS, HBG, OPS, PRS, Method, Phase, SyncJoint, phase_plan
from trainers.train import Trainer

PHASE_FILE = "phase.json"
METHOD_FILE = "method.json"
REFLECTIONS_FILE = "reflections.jsonl"
HINTS_FILE = "hints.json"


# -- the trainer with the method's hooks ---------------------------------------------------


class SupervisedTrainer(Trainer):
    """A :class:`~trainers.train.Trainer` whose episodes, update and SFT data follow ``method``.

    ``sft_tasks`` (SFT phases) chooses whose demonstrations are trained on (default: all
    training tasks); ``extra_conversations`` are added as SFT conversations (reflections)."""

    def __init__(self, config: TrainConfig, method: Method, *args: Any, sft_tasks: Sequence[Task] | None = None,
                 extra_conversations: Sequence[Sequence[dict[str, Any]]] = (), hint_writer: Callable[[Task], str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.method = method
        self.sft_tasks = list(sft_tasks) if sft_tasks is not None else None
        self.extra_conversations = [list(c) for c in extra_conversations]
        self._by_id: dict[str, Task] | None = None
        self._scripts: dict[str, list[str]] = {}
        self._hint_book: Any = None
        self._hint_writer = hint_writer
        self._warned: set[str] = set()

    def task_by_id(self, task_id: str) -> Task:
        if self._by_id is None:
            self._by_id = {task.id: task for task in self.tasks()}
        return self._by_id[task_id]

    # -- episodes (OPS, HBG) --------------------------------------------------------------

    def episode_specs(self, task_ids: Sequence[str], step: int) -> list[Any]:
        specs = super().episode_specs(task_ids, step)
        method = self.method
        if isinstance(method, OPS):
            from trainers.supervision.ops import ScriptHook, ground_truth_script, replaced_samples

            chosen = replaced_samples(self.config.grpo.n, method.replace)
            for spec in specs:
                if spec.sample in chosen:
                    if spec.task_id not in self._scripts:
                        script = ground_truth_script(self.task_by_id(spec.task_id), self.config.data.call_format,
                                                     method.calls_per_message)
                        if len(script) > self.config.rollout.max_messages:
                            raise ValueError(f"ops: the demonstration of {spec.task_id} has {len(script)} messages, more than "
                                             f"[rollout] max_messages = {self.config.rollout.max_messages}; raise it")
                        self._scripts[spec.task_id] = script
                    spec.replace = ScriptHook(self._scripts[spec.task_id])
                    spec.source = "ground_truth"
        elif isinstance(method, HBG):
            from trainers.supervision.hints import hinted_samples

            chosen = hinted_samples(self.config.grpo.n, method.hinted)
            book = self.hint_book()
            for spec in specs:
                if spec.sample in chosen:
                    hint = book.get(self.task_by_id(spec.task_id))
                    spec.prompt_edit = _HintEdit(hint, method.position)
                    spec.source = "hinted"
        return specs

    def collect(self, engine: Any, task_ids: Sequence[str], step: int) -> list[Any]:
        rollouts = super().collect(engine, task_ids, step)
        for rollout in rollouts:  # an expert cut by a budget scores 0 and teaches the opposite
            if rollout.source == "ground_truth" and rollout.reward < 1.0 and rollout.task_id not in self._warned:
                self._warned.add(rollout.task_id)
                sys.stderr.write(f"toolenv: warning: ops: the ground-truth rollout of {rollout.task_id} scored "
                                 f"{rollout.reward} (truncation: {rollout.meta.get('truncation')}); raise [rollout] "
                                 "max_response_tokens / max_prompt_tokens\n")
        return rollouts

    def hint_book(self) -> Any:
        from trainers.supervision.hints import HintBook

        if self._hint_book is None:
            self._hint_book = HintBook(self._hint_writer or make_hint_writer(self.method, self.config.data.call_format),
                                       Path(self.config.run.out_dir) / HINTS_FILE)
        return self._hint_book

    # -- update (shaped OPS loss, joint SFT loss) -----------------------------------------

    def make_updater(self, *args: Any, **kwargs: Any) -> Any:
        method = self.method
        if isinstance(method, OPS) and method.shaped_loss:
            from trainers.supervision.ops import ShapedLossConfig
            from trainers.supervision.updaters import ShapedOPSUpdater

            shaped = ShapedLossConfig(gamma=method.gamma, off_dual_clip=method.off_dual_clip)
            return ShapedOPSUpdater(*args, shaped=shaped, **kwargs)
        if isinstance(method, SyncJoint):
            from trainers.supervision.updaters import JointSFTUpdater

            samples = self.sft_samples(Path(self.config.run.out_dir))
            return JointSFTUpdater(*args, sft_samples=samples, weight=method.weight, batch=method.batch,
                                   seed=self.config.run.seed, **kwargs)
        return super().make_updater(*args, **kwargs)

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
            samples += build_samples(self.tokenizer, self.extra_conversations, "per_message", self.config.sft.max_length)
        if not samples:
            raise ValueError("nothing to train on in this SFT phase")
        return samples


class _HintEdit:
    """A picklable ``prompt_edit``: the hint inserted for generation only."""

    def __init__(self, hint: str, position: str) -> None:
        self.hint, self.position = hint, position

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from trainers.supervision.hints import insert_hint

        return insert_hint(messages, self.hint, self.position)


def make_hint_writer(method: Method, call_format: str) -> Callable[[Task], str]:
    from toolenv.formats import get_codec
    from trainers.supervision.hints import EndpointHintWriter, builtin_hint

    codec = get_codec(call_format)
    if isinstance(method, HBG) and method.source == "endpoint":
        return EndpointHintWriter(method.endpoint, method.model, codec, api_key=os.environ.get(method.api_key_env))
    return lambda task: builtin_hint(task, codec)


# -- step records of an RL phase -------------------------------------------------------------


def read_step_records(run_dir: Path, first: int, last: int) -> list[tuple[RolloutRecord, dict[str, Any]]]:
    """The rollout records (and raw trajectory dicts) of steps ``first..last`` of an RL run
    (its ``rollouts/step_N.jsonl`` files)."""
    out = []
    for step in range(max(1, first), last + 1):
        path = run_dir / "rollouts" / f"step_{step:06d}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                data = json.loads(line)
                record = RolloutRecord(step, data["task_id"], int(data["sample"]), float(data["reward"]),
                                       data.get("source", "policy"), int(data.get("group", 0)))
                out.append((record, data))
    return out


def select_reflection_rollouts(rows: Sequence[tuple[RolloutRecord, dict[str, Any]]], method: PRS) -> list[tuple[RolloutRecord, dict[str, Any]]]:
    """The trajectories PRS reflects on: ``"failed"`` — failed policy rollouts; ``"paper"`` —
    sample 1 of every group whatever its result (the paper's ``_1``). At most ``per_task``
    per task (latest steps first) and ``max_reflections`` in all."""
    if method.selection == "failed":
        pool = [row for row in rows if row[0].source == "policy" and row[0].reward <= 0]
    else:
        pool = [row for row in rows if row[0].source == "policy" and row[0].sample == 1]
    pool.sort(key=lambda row: (-row[0].step, row[0].group, row[0].sample))
    kept: list[tuple[RolloutRecord, dict[str, Any]]] = []
    per_task: dict[str, int] = {}
    for row in pool:
        if per_task.get(row[0].task_id, 0) < method.per_task:
            per_task[row[0].task_id] = per_task.get(row[0].task_id, 0) + 1
            kept.append(row)
        if len(kept) >= method.max_reflections:
            break
    return kept


def build_reflections(rows: Sequence[tuple[RolloutRecord, dict[str, Any]]], tasks: dict[str, Task], method: PRS,
                      call_format: str, path: Path | None = None, workers: int = 8) -> list[dict[str, Any]]:
    """Reflection records with their SFT conversation for the selected trajectories: one each
    from the built-in reflector, one or two each from the endpoint judge (call A, and call B on
    a failing turn), the judge's calls made concurrently. With ``path``, records are kept in a
    JSON Lines file (a trajectory's records written together) and reused when the phase is
    resumed."""
    from toolenv.formats import get_codec
    from trainers.supervision.reflect import EndpointJudge, reflect, reflection_messages

    codec = get_codec(call_format)
    done: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    if path is not None and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                done.setdefault((record["step"], record["task_id"], record["sample"]), []).append(record)
    judge = None
    if method.reflector == "judge":
        judge = EndpointJudge(method.endpoint, method.model, codec, api_key=os.environ.get(method.api_key_env),
                              error_turn=method.error_turn_call)

    def one(row: tuple[RolloutRecord, dict[str, Any]]) -> list[dict[str, Any]]:
        record, data = row
        key = (record.step, record.task_id, record.sample)
        if key in done:
            return done[key]
        task = tasks[record.task_id]
        trajectory = Trajectory.from_dict(data)
        reflections = judge(task, trajectory) if judge is not None else [reflect(task, trajectory, codec)]
        out = []
        for reflection in reflections:
            reflection.sample, reflection.step = record.sample, record.step
            messages = reflection_messages(task, trajectory, reflection, codec, method.show_ground_truth)
            out.append({"step": record.step, "task_id": record.task_id, "sample": record.sample,
                        "reflection": reflection.to_dict(), "messages": messages})
        if path is not None:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
        return out

    if judge is not None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [r for records in pool.map(one, rows) for r in records]
    return [r for row in rows for r in one(row)]


# -- phases ------------------------------------------------------------------------------


def phase_config(base: TrainConfig, phase: Phase, out_dir: Path, model_path: str) -> TrainConfig:
    """The configuration of one phase (see the module docstring)."""
    config = copy.deepcopy(base)
    config.run.out_dir = str(out_dir / phase.name)
    config.model.path = model_path
    if phase.kind == "rl":
        config.run.mode = "grpo"
        config.grpo.steps = phase.steps
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


def check_method(config: TrainConfig, method: Method) -> None:
    """One-line errors for a method that cannot run with ``config``."""
    if isinstance(method, (OPS, HBG)):
        if config.grpo.old_logprobs != "recompute":
            raise ValueError(f"{method.name} needs [grpo] old_logprobs = \"recompute\" (the update must not use the engine's "
                             "log-probs of substituted or hinted messages)")
        count = method.replace if isinstance(method, OPS) else method.hinted
        if count >= config.grpo.n and isinstance(method, OPS):
            raise ValueError(f"ops replaces {count} of n={config.grpo.n} rollouts: keep at least one policy sample")
        if count > config.grpo.n:
            raise ValueError(f"hbg hints {count} of n={config.grpo.n} rollouts")


def run_method(config: TrainConfig, method: Method, out_dir: str | Path, *, model: Any = None, tokenizer: Any = None,
               tasks: Sequence[Task] | None = None, validation: Sequence[Task] | None = None,
               hint_writer: Callable[[Task], str] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) every phase of ``method`` into ``out_dir``; returns the final model's
    folder. ``model``/``tokenizer`` (tests) replace ``[model] path`` for the first phase."""
    import torch

    check_method(config, method)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = phase_plan(method, config.grpo.steps)
    say = log or (lambda text: None)
    current = config.model.path
    given = model
    summary: list[dict[str, Any]] = []
    last_rl: tuple[Path, Phase] | None = None
    for phase in plan:
        folder = out / phase.name
        state = _phase_done(folder)
        if state is not None:
            say(f"{method.name}: phase {phase.name} {state['status']}")
            summary.append({**phase.to_dict(), **state})
            if state["status"] == "done":
                current, given = str(folder / "final"), None
            if phase.kind == "rl":
                last_rl = (folder, phase)
            continue
        pconfig = phase_config(config, phase, out, current)
        extra: dict[str, Any] = {}
        if phase.kind == "sft" and phase.data != "demos":
            assert last_rl is not None, "an interleaved SFT phase follows an RL phase"
            sft_tasks, conversations, info = interleaved_sft_data(method, last_rl, pconfig, folder, tasks)
            if not sft_tasks and not conversations:
                _write_phase(folder, {"status": "skipped", "reason": "no failed task and no reflection", **info})
                summary.append({**phase.to_dict(), "status": "skipped", **info})
                say(f"{method.name}: phase {phase.name} skipped (nothing failed)")
                continue
            extra = {"sft_tasks": sft_tasks, "extra_conversations": conversations}
            say(f"{method.name}: phase {phase.name}: {len(sft_tasks)} failed tasks, {len(conversations)} reflections")
        resume = (folder / "config.json").exists()
        torch.manual_seed(pconfig.run.seed)
        trainer = SupervisedTrainer(pconfig, method, model=given, tokenizer=tokenizer if given is not None else None,
                                    tasks=tasks, validation=validation, hint_writer=hint_writer, **extra)
        say(f"{method.name}: phase {phase.name} ({phase.kind}) {'resumed' if resume else 'started'}")
        trainer.run(resume=resume)
        _write_phase(folder, {"status": "done", **({"sft_tasks": [t.id for t in extra["sft_tasks"]],
                                                   "reflections": len(extra["extra_conversations"])} if extra else {})})
        summary.append({**phase.to_dict(), "status": "done"})
        current, given = str(folder / "final"), None
        if phase.kind == "rl":
            last_rl = (folder, phase)
    (out / METHOD_FILE).write_text(json.dumps({"method": method.to_dict(), "phases": summary, "final": current}, indent=2))
    return Path(current)


def interleaved_sft_data(method: Method, last_rl: tuple[Path, Phase], config: TrainConfig, folder: Path,
                         tasks: Sequence[Task] | None) -> tuple[list[Task], list[list[dict[str, Any]]], dict[str, Any]]:
    """The SFT data after an RL phase: demonstrations of the tasks that failed in its last
    ``window`` steps and, for PRS, reflection conversations."""
    from trainers.train import train_tasks

    assert isinstance(method, ETS)
    rl_dir, rl_phase = last_rl
    first = rl_phase.steps - rl_phase.window + 1
    rows = read_step_records(rl_dir, first, rl_phase.steps)
    pool = list(tasks) if tasks is not None else train_tasks(config)
    by_id = {task.id: task for task in pool}
    failed = [task_id for task_id in erroneous_task_ids([r for r, _ in rows], rl_phase.steps, rl_phase.window, method.rule)
              if task_id in by_id]
    conversations: list[list[dict[str, Any]]] = []
    info: dict[str, Any] = {"window_records": len(rows), "failed_tasks": len(failed)}
    if isinstance(method, PRS):
        chosen = select_reflection_rollouts([row for row in rows if row[0].task_id in by_id], method)
        folder.mkdir(parents=True, exist_ok=True)
        records = build_reflections(chosen, by_id, method, config.data.call_format, folder / REFLECTIONS_FILE)
        conversations = [record["messages"] for record in records]
        info["reflections"] = len(conversations)
    return [by_id[i] for i in failed], conversations, info
