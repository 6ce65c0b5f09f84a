"""The ``Trajectory`` record: what happened in one episode, as the evaluator and trainer read it.

A trajectory holds, per user turn, the user messages shown and every assistant step: the raw
output, the parse diagnostics, the calls that ran and their results, and the structural state.
It serialises to one JSON object (one line of a JSON Lines file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from toolenv.calls import Call


@dataclass
class Step:
    """One assistant message and what came of it."""

    raw: Any
    parse_status: str
    calls: list[Call] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    structure: str = ""
    #: calls of this message whose positional arguments were dropped (BFCL's python decoder)
    positional_dropped: int = 0
    #: execution strings BFCL would run that toolenv does not (a nested call, a value that does
    #: not read back): they still make the step a tool step, each giving an error result
    unrunnable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "raw": self.raw,
            "parse_status": self.parse_status,
            "calls": [c.to_dict() for c in self.calls],
            "results": list(self.results),
            "errors": list(self.errors),
            "structure": self.structure,
        }
        if self.positional_dropped:  # written only when it happened: older records stay as they were
            data["positional_dropped"] = self.positional_dropped
        if self.unrunnable:
            data["unrunnable"] = list(self.unrunnable)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Step":
        return cls(
            raw=data["raw"],
            parse_status=data["parse_status"],
            calls=[Call.from_dict(c) for c in data.get("calls", [])],
            results=list(data.get("results", [])),
            errors=list(data.get("errors", [])),
            structure=data.get("structure", ""),
            positional_dropped=int(data.get("positional_dropped", 0)),
            unrunnable=list(data.get("unrunnable", [])),
        )


@dataclass
class TurnRecord:
    index: int
    user: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    verdict: dict[str, Any] | None = None

    def call_steps(self) -> list[list[Call | str]]:
        """The steps that ran at least one call (BFCL drops the others before checking). A
        step's unrunnable execution strings come last: replayed, each gives an error result
        and changes nothing, as in BFCL, where they fail when run."""
        return [list(step.calls) + list(step.unrunnable) for step in self.steps if step.calls or step.unrunnable]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "user": self.user,
            "steps": [s.to_dict() for s in self.steps],
            "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TurnRecord":
        return cls(
            data["index"],
            list(data.get("user", [])),
            [Step.from_dict(s) for s in data.get("steps", [])],
            data.get("verdict"),
        )


@dataclass
class Trajectory:
    task_id: str
    category: str
    data_version: str
    call_format: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    truncated: bool = False
    reward: float | None = None
    verdict: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def model_turns(self) -> list[list[list[Call | str]]]:
        """Calls by turn and step, the checker's input."""
        return [turn.call_steps() for turn in self.turns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "category": self.category,
            "data_version": self.data_version,
            "call_format": self.call_format,
            "messages": self.messages,
            "turns": [t.to_dict() for t in self.turns],
            "truncated": self.truncated,
            "reward": self.reward,
            "verdict": self.verdict,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trajectory":
        return cls(
            task_id=data["task_id"],
            category=data["category"],
            data_version=data["data_version"],
            call_format=data["call_format"],
            messages=list(data.get("messages", [])),
            turns=[TurnRecord.from_dict(t) for t in data.get("turns", [])],
            truncated=bool(data.get("truncated", False)),
            reward=data.get("reward"),
            verdict=data.get("verdict"),
            meta=dict(data.get("meta", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def append_jsonl(path: str | Path, trajectories: Iterable[Trajectory]) -> None:
    """Append trajectories to a JSON Lines file, flushing after each line."""
    with open(path, "a", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(trajectory.to_json() + "\n")
            handle.flush()


def read_jsonl(path: str | Path) -> Iterator[Trajectory]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield Trajectory.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: not a trajectory record ({exc})") from None
