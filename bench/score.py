"""Scoring 800 trajectories: toolenv's checker beside bfcl-eval's ``multi_turn_checker``.

The trajectories are the ground truth of every entry, one step per turn, with every second
entry mutated (its last ground-truth call dropped) so that passing and failing entries both
occur. Both checkers replay from scratch and must reach the same verdicts. One warm-up pass,
then the best of ``--repeat``.

    python bench/score.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker as official  # noqa: E402
from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils  # noqa: E402

from toolenv.calls import parse_python_call  # noqa: E402
from toolenv.checker import check  # noqa: E402
from toolenv.data import data_version, load_tasks, raw_entries  # noqa: E402

_names = itertools.count()


def trajectories(tasks: list) -> list[list[list[list[str]]]]:
    out = []
    for number, task in enumerate(tasks):
        turns = [list(turn) for turn in task.ground_truth]
        if number % 2:
            last = max((t for t, turn in enumerate(turns) if turn), default=None)
            if last is not None:
                turns[last] = turns[last][:-1]
        out.append([[turn] if turn else [] for turn in turns])
    return out


def ours(tasks: list, runs: list) -> list[bool]:
    return [
        check(task, [[[parse_python_call(c) for c in step] for step in turn] for turn in run]).passed
        for task, run in zip(tasks, runs)
    ]


def theirs(tasks: list, runs: list, entries: dict) -> list[bool]:
    verdicts = []
    for task, run in zip(tasks, runs):
        name = f"benchscore{next(_names)}"
        result = official.multi_turn_checker(
            run, [list(t) for t in task.ground_truth], entries[task.id], task.bfcl_category, name
        )
        verdicts.append(bool(result["valid"]))
    return verdicts


def _clear_official() -> None:
    module_globals = vars(multi_turn_utils)
    for key in [k for k in module_globals if k.startswith("benchscore")]:
        del module_globals[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tasks = load_tasks()
    entries = {
        e["id"]: e for category in ("base", "miss_func", "miss_param", "long_context") for e in raw_entries(category)
    }
    runs = trajectories(tasks)
    our_times, their_times = [], []
    for _ in range(args.repeat + 1):
        start = time.perf_counter()
        mine = ours(tasks, runs)
        our_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        official_verdicts = theirs(tasks, runs, entries)
        their_times.append(time.perf_counter() - start)
        _clear_official()
        assert mine == official_verdicts, "the two checkers disagree"
    best_ours, best_theirs = min(our_times[1:]), min(their_times[1:])
    print(f"scoring {len(tasks)} trajectories ({sum(mine)} pass), both checkers replaying from scratch")
    print(f"  data       {data_version()}")
    print(f"  toolenv    {best_ours * 1000:8.1f} ms   (best of {args.repeat})")
    print(f"  bfcl-eval  {best_theirs * 1000:8.1f} ms   (best of {args.repeat})")
    print(f"  ratio      {best_theirs / best_ours:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
