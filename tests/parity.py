"""Ground-truth replay on our executor and on the official engine, compared call by call.

Library for the parity tests, and a command for backend work:

    python -m tests.parity                     # all 800 entries
    python -m tests.parity --cls TravelAPI     # entries involving one API
    python -m tests.parity --id multi_turn_base_17
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from envs import backend_class
from tests.oracle import OfficialSide, state_differences
from toolenv.data import Task, load_tasks
from toolenv.executor import Session


@dataclass
class Mismatch:
    task_id: str
    turn: int
    what: str

    def __str__(self) -> str:
        return f"{self.task_id} turn {self.turn}: {self.what}"


@dataclass
class ReplayReport:
    entries: int = 0
    calls: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


#: the official engine's text for a recursion overflow (``du``/``find`` on a cyclic or very deep
#: tree) is not a function of the call: CPython appends " while calling a Python object" when the
#: limit is hit inside a C call, and which frame hits it alternates with the caller's stack depth
#: (the official ``du`` gives either text, depending only on how deep it is called from)
_RECURSION = "Error during execution: maximum recursion depth exceeded"


def same_result(ours: str, official: str) -> bool:
    """Equal result strings, or both the recursion-overflow error (see :data:`_RECURSION`)."""
    return ours == official or (ours.startswith(_RECURSION) and official.startswith(_RECURSION))


def replay_both(task: Task, turns: list[list[str]] | None = None) -> tuple[int, list[Mismatch]]:
    """Replay ``turns`` (default: the ground truth) on both engines; compare every result string
    and, after every turn, the public state and RNG state of every instance."""
    turns = [list(t) for t in task.ground_truth] if turns is None else turns
    ours = Session(task.involved_classes, task.initial_config, task.long_context, version=task.release)
    mismatches: list[Mismatch] = []
    calls = 0
    with OfficialSide(task.involved_classes, task.initial_config, task.long_context, task.id) as theirs:
        for index, turn in enumerate(turns):
            mine = [result.text for result in ours.execute_all(turn)]
            official = theirs.run(turn)
            calls += len(turn)
            for call, a, b in zip(turn, mine, official):
                if not same_result(a, b):
                    mismatches.append(
                        Mismatch(task.id, index, f"{call}\n    ours:     {a[:400]!r}\n    official: {b[:400]!r}")
                    )
            for class_name, instance in theirs.instances.items():
                for problem in state_differences(ours.instances[class_name], instance):
                    mismatches.append(Mismatch(task.id, index, f"{class_name} state: {problem}"))
            if mismatches:
                break
    return calls, mismatches


def implemented(task: Task) -> bool:
    """True when every backend the task involves can be imported (useful while building them)."""
    try:
        for class_name in task.involved_classes:
            backend_class(class_name)
    except (ImportError, AttributeError):
        return False
    return True


def replay_all(tasks: list[Task]) -> ReplayReport:
    report = ReplayReport()
    for task in tasks:
        calls, mismatches = replay_both(task)
        report.entries += 1
        report.calls += calls
        report.mismatches += mismatches
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cls", help="only entries involving this official class name")
    parser.add_argument("--id", help="only this entry id")
    parser.add_argument("--show", type=int, default=10, help="mismatches to print")
    args = parser.parse_args(argv)
    tasks = load_tasks()
    if args.cls:
        tasks = [t for t in tasks if args.cls in t.involved_classes]
    if args.id:
        tasks = [t for t in tasks if t.id == args.id]
    skipped = [t for t in tasks if not implemented(t)]
    tasks = [t for t in tasks if implemented(t)]
    if skipped:
        print(f"skipping {len(skipped)} entries whose backends are not importable yet")
    report = replay_all(tasks)
    for mismatch in report.mismatches[: args.show]:
        print(mismatch)
    failed = len({m.task_id for m in report.mismatches})
    print(f"{report.entries} entries, {report.calls} calls, {failed} entries with mismatches")
    return 1 if report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
