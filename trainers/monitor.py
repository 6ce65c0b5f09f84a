"""Per-step monitoring: control-token probes, structural-state rates, validation, metrics files.

Control-token probes (the paper's collapse signal, docs/paper-methods.md §6.3), defined on token ids
so they work for any tokenizer:

* **opener** — the canonical tokenisation of the call format's opener followed by a newline
  (hermes: ``<tool_call>\\n``; one-plus-one tokens for Qwen, six for SmolLM2:
  ``<`` ``tool`` ``_`` ``call`` ``>`` ``\\n``, and one-plus-one again with
  ``[model] add_call_tokens``, trainers/call_tokens.py).
* **after-opener positions** — completion positions j whose previous ``len(opener)`` tokens are
  exactly the opener ids, all of them and token j *sampled* (loss mask 1). Observation text
  and prompts never count. A model that spelled the opener with other token boundaries is not
  probed there (the engine sampled a non-canonical split; rare, and documented rather than
  guessed at).
* At each such position the policy's next-token distribution (temperature 1, the no-grad
  forward that computes the old log-probs, so it costs no extra pass) gives
  ``p_healthy`` = p(first token of the healthy continuation, hermes ``{"``),
  ``p_eot`` = p(end-of-turn id: an empty call, then end of message) and
  ``p_repeat`` = p(first token of the opener: a repeated tag).
* ``p_opener_start`` = p(first token of the opener) at the first sampled position of every
  assistant message (exact for Qwen, where ``<tool_call>`` is one token; for a multi-token
  opener it is the probability of its first piece, an upper bound on the opener's).

Means are over positions in the step (``count`` is reported with them). The early-warning flag
compares each probe with its running baseline (the mean of the previous ``window`` steps):
``p_eot`` or ``p_repeat`` rising by ``spike_abs`` and ``spike_ratio``× above it, or
``p_healthy`` falling by ``spike_abs`` below it, raises ``warning`` with the reasons.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from toolenv.inference.template import end_of_message_id
from toolenv.structure import STATES
from toolenv.trajectory import Trajectory
from trainers.tokenize import encode

#: (opener text, healthy continuation) per call format; others are probed only when configured
DEFAULT_PROBES: dict[str, tuple[str, str]] = {
    "hermes": ("<tool_call>\n", '{"'),
    "json_block": ("```json\n", "["),
}


@dataclass(frozen=True)
class ProbeSpec:
    """The token ids the probes look for and at."""

    opener: tuple[int, ...]
    healthy: int
    end_of_turn: int
    repeat: int

    @classmethod
    def build(
        cls, tokenizer: Any, call_format: str, opener_text: str | None = None, healthy_text: str | None = None
    ) -> "ProbeSpec | None":
        """The spec for a call format (``None`` when it has no default and none is given)."""
        default = DEFAULT_PROBES.get(call_format)
        opener_text = opener_text or (default[0] if default else None)
        healthy_text = healthy_text or (default[1] if default else None)
        if not opener_text or not healthy_text:
            return None
        opener = tuple(encode(tokenizer, opener_text))
        healthy = encode(tokenizer, healthy_text)
        if not opener or not healthy:
            raise ValueError("probe opener and healthy continuation must tokenise to at least one token")
        return cls(opener, healthy[0], end_of_message_id(tokenizer), opener[0])


def after_opener_positions(completion_ids: Sequence[int], loss_mask: Sequence[int], opener: Sequence[int]) -> list[int]:
    """Completion offsets right after a sampled opener (see the module docstring)."""
    width = len(opener)
    found = []
    for j in range(width, len(completion_ids)):
        if loss_mask[j] and all(loss_mask[j - width : j]) and tuple(completion_ids[j - width : j]) == tuple(opener):
            found.append(j)
    return found


def message_starts(loss_mask: Sequence[int]) -> list[int]:
    """Completion offsets where a sampled run (an assistant message) begins."""
    return [j for j, m in enumerate(loss_mask) if m and (j == 0 or not loss_mask[j - 1])]


class ProbeAccumulator:
    """Collects probe probabilities from the trainer's no-grad forwards over one step's
    rollouts; hand it to :meth:`GRPOUpdater.step` as ``probe``."""

    def __init__(self, spec: ProbeSpec, rollouts: Sequence[Any]) -> None:
        self.spec = spec
        self.rollouts = rollouts
        self.values: dict[str, list[float]] = {"p_healthy": [], "p_eot": [], "p_repeat": [], "p_opener_start": []}

    def __call__(self, indices: list[int], logprobs_all: Any, start: int = 0) -> None:
        """``logprobs_all[row, t - start]`` is the next-token log-distribution at input
        position t of rollout ``indices[row]``; it may cover a chunk of the positions (the
        trainer computes them chunk by chunk), and positions outside it are left to the call
        that covers them."""
        spec = self.spec
        width = logprobs_all.shape[1]
        for row, index in enumerate(indices):
            rollout = self.rollouts[index]
            offset = len(rollout.prompt_ids) - 1 - start  # completion j is scored at input position P+j-1
            for j in after_opener_positions(rollout.completion_ids, rollout.loss_mask, spec.opener):
                if 0 <= offset + j < width:
                    probs = logprobs_all[row, offset + j].exp()
                    self.values["p_healthy"].append(float(probs[spec.healthy]))
                    self.values["p_eot"].append(float(probs[spec.end_of_turn]))
                    self.values["p_repeat"].append(float(probs[spec.repeat]))
            for j in message_starts(rollout.loss_mask):
                if 0 <= offset + j < width:
                    self.values["p_opener_start"].append(float(logprobs_all[row, offset + j, spec.repeat].exp()))

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in self.values.items():
            if values:
                out[f"probe/{name}"] = sum(values) / len(values)
        out["probe/after_opener_count"] = float(len(self.values["p_healthy"]))
        out["probe/message_starts"] = float(len(self.values["p_opener_start"]))
        return out


def structure_rates(trajectories: Iterable[Trajectory], prefix: str = "state/") -> dict[str, float]:
    """Share of assistant messages in each structural state (toolenv.structure)."""
    counts: Counter[str] = Counter()
    for trajectory in trajectories:
        for turn in trajectory.turns:
            for step in turn.steps:
                counts[step.structure or "unknown"] += 1
    total = sum(counts.values())
    out = {f"{prefix}{state}": (counts[state] / total if total else 0.0) for state in STATES}
    out[f"{prefix}messages"] = float(total)
    return out


def reward_metrics(rewards: Sequence[float], groups: Sequence[Any]) -> dict[str, float]:
    """Mean reward, share of groups with any/zero variance (a group with equal rewards gives
    no gradient)."""
    by_group: dict[Any, list[float]] = {}
    for reward, group in zip(rewards, groups):
        by_group.setdefault(group, []).append(reward)
    flat = sum(1 for values in by_group.values() if max(values) == min(values))
    return {
        "reward/mean": sum(rewards) / len(rewards) if rewards else 0.0,
        "reward/solved_groups": sum(1 for v in by_group.values() if max(v) > 0) / max(1, len(by_group)),
        "reward/flat_groups": flat / max(1, len(by_group)),
    }


# -- validation ----------------------------------------------------------------------------


#: budget truncations of the rollout driver (``"env"`` is BFCL's own step limit, which the
#: environment scores like any ending)
BUDGET_TRUNCATIONS = ("max_total_tokens", "max_messages")


def validate(driver: Any, tasks: Sequence[Any], progress: str | None = None) -> tuple[dict[str, float], list[Any]]:
    """Greedy episodes of ``tasks`` through the rollout engine (``driver``: a
    :class:`~trainers.rollout.RolloutDriver` with greedy sampling and training's budgets, so
    the engine that holds the policy's weights plays them, batched as rollouts are), scored by
    the environment's BFCL checker: ``val/<category>``, ``val/mean`` (over categories, as the
    paper reports), ``val/truncated`` (the share of episodes a budget cut: they score 0, as an
    unfinished BFCL entry does, and are never counted as a structural state: a cut episode has
    no empty message), ``val/length_stops`` (the share of messages that hit the per-message
    token limit) and the structural rates of the messages the policy wrote."""
    import sys

    from tqdm import tqdm

    if progress is not None:  # say at once what runs: a first round can take minutes
        sys.stderr.write(f"{progress}: {len(tasks)} greedy episodes through the rollout engine\n")
        sys.stderr.flush()
    bar = tqdm(total=len(tasks), unit="episode", file=sys.stderr, disable=progress is None, dynamic_ncols=True)
    with bar:
        rollouts = driver.rollouts([task.id for task in tasks], finished=lambda done: bar.update(done - bar.n))
    by_category: dict[str, list[float]] = {}
    for task, rollout in zip(tasks, rollouts):
        by_category.setdefault(task.category, []).append(float(rollout.reward))
    out = {f"val/{category}": sum(v) / len(v) for category, v in sorted(by_category.items())}
    out["val/mean"] = sum(out.values()) / len(out) if out else 0.0
    cut = [r for r in rollouts if r.meta.get("truncation") in BUDGET_TRUNCATIONS]
    out["val/truncated"] = len(cut) / len(rollouts) if rollouts else 0.0
    reasons = [reason for r in rollouts for reason in r.meta.get("finish_reasons", ())]
    out["val/length_stops"] = reasons.count("length") / len(reasons) if reasons else 0.0
    out.update(structure_rates((r.trajectory for r in rollouts), prefix="val_state/"))
    return out, rollouts


# -- early warning -------------------------------------------------------------------------


@dataclass
class SpikeDetector:
    """Flags a probe spike against the running mean of the previous ``window`` steps."""

    window: int = 5
    spike_abs: float = 0.1
    spike_ratio: float = 2.0
    history: dict[str, deque] = field(default_factory=dict)

    def check(self, metrics: dict[str, float]) -> list[str]:
        reasons = []
        for name, rising in (("probe/p_eot", True), ("probe/p_repeat", True), ("probe/p_healthy", False)):
            value = metrics.get(name)
            if value is None or math.isnan(value):
                continue
            past = self.history.setdefault(name, deque(maxlen=self.window))
            if past:
                base = sum(past) / len(past)
                if rising and value - base >= self.spike_abs and value >= self.spike_ratio * base:
                    reasons.append(f"{name.split('/')[1]} {value:.3f} vs baseline {base:.3f}")
                if not rising and base - value >= self.spike_abs:
                    reasons.append(f"{name.split('/')[1]} fell to {value:.3f} from baseline {base:.3f}")
            past.append(value)
        return reasons

    def state_dict(self) -> dict[str, Any]:
        return {name: list(values) for name, values in self.history.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {name: deque(values, maxlen=self.window) for name, values in state.items()}


# -- metrics file --------------------------------------------------------------------------

METRICS_FILE = "metrics.jsonl"


#: the folder of the TensorBoard event files (``[monitor] tracker = "tensorboard"``)
TENSORBOARD_DIR = "tensorboard"


class MetricsWriter:
    """Appends one JSON object per step to ``RUN_DIR/metrics.jsonl``; on resume, lines of
    steps after the checkpoint are dropped first so the file matches the restored state.

    With ``tracker="tensorboard"`` the same numbers (every int or float value of a step's record)
    also go to ``RUN_DIR/tensorboard`` as scalars, through ``torch.utils.tensorboard``; a resumed
    run purges the events after the checkpoint there too, and a fresh run removes old ones."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tracker: str = "none") -> None:
        if tracker not in ("none", "tensorboard"):
            raise ValueError(f"unknown tracker {tracker!r}; valid: none, tensorboard")
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and _step_of(line) is not None and _step_of(line) <= resume_step
            ]  # type: ignore[operator]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.board = _summary_writer(Path(run_dir) / TENSORBOARD_DIR, resume_step) if tracker == "tensorboard" else None

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")
        if self.board is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.board.add_scalar(name, float(value), step)
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def _summary_writer(folder: Path, resume_step: int | None) -> Any:
    """A ``SummaryWriter`` on ``folder``: after ``resume_step`` (a resumed run) events are purged;
    for a fresh run the folder's old event files are removed first."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            '[monitor] tracker = "tensorboard" needs the tensorboard package: pip install tensorboard '
            '(or set tracker = "none")'
        ) from None
    if resume_step is None and folder.is_dir():
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
    return SummaryWriter(log_dir=str(folder), purge_step=None if resume_step is None else resume_step + 1)


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise ValueError(f"{run_dir} has no {METRICS_FILE} (is it a training run folder?)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}:{number}: not a JSON object") from None
    return rows
