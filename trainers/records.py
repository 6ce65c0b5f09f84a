"""The ``RUN/rollouts/step_N.jsonl`` records of a GRPO run: written here, read here.

One JSON object per rollout of the step: the trajectory's own dict
(:meth:`toolenv.trajectory.Trajectory.to_dict`: ``task_id``, messages, turns with their
structural states, verdict) plus ``group``, ``sample``, ``reward``, ``truncated``,
``source`` (``"policy"``, or ``"ground_truth"``/``"hinted"`` for the supervision methods'
episodes), and with ``[monitor] rollout_ids`` the token ids the update trained on
(``prompt_ids``, ``completion_ids``, ``loss_mask``). ETS and PRS choose their SFT data from
these files, and the study reports the policy-only reward and structural states of each step
from them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

ROLLOUTS = "rollouts"


@dataclass(frozen=True)
class RolloutRecord:
    """What ETS and PRS need to know about one training rollout."""

    step: int
    task_id: str
    sample: int
    reward: float
    source: str = "policy"
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, step: int, data: dict[str, Any]) -> "RolloutRecord":
        """From one line of a ``step_N.jsonl`` file."""
        return cls(
            step,
            data["task_id"],
            int(data["sample"]),
            float(data["reward"]),
            data.get("source", "policy"),
            int(data.get("group", 0)),
        )


def step_file(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / ROLLOUTS / f"step_{step:06d}.jsonl"


def write_step(run_dir: Path, step: int, rollouts: Sequence[Any]) -> None:
    """Write step ``step``'s rollouts (:class:`trainers.types.Rollout`), replacing the file a
    resumed run may have left."""
    path = step_file(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for rollout in rollouts:
            record = rollout.trajectory.to_dict() if rollout.trajectory is not None else {}
            record.update(
                group=rollout.group,
                sample=rollout.sample,
                reward=rollout.reward,
                truncated=rollout.truncated,
                source=rollout.source,
            )
            # with [monitor] rollout_ids: the ids the update trained on, which a replay (the
            # mechanism probe) uses instead of re-tokenising the messages
            record.update(getattr(rollout, "ids", None) or {})
            handle.write(json.dumps(record, ensure_ascii=False, default=repr) + "\n")


def read_step(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """The raw records of one step (none when the step wrote no file)."""
    path = step_file(run_dir, step)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_step_records(run_dir: Path, first: int, last: int) -> list[tuple[RolloutRecord, dict[str, Any]]]:
    """The rollout records (and raw trajectory dicts) of steps ``first..last`` of an RL run."""
    return [
        (RolloutRecord.from_record(step, data), data)
        for step in range(max(1, first), last + 1)
        for data in read_step(run_dir, step)
    ]
