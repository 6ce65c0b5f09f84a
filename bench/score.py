"""Scoring trajectories: toolenv's checker beside bfcl-eval's ``multi_turn_checker``, same run.

Two cases, both checkers reaching the same verdict on every trajectory:

- **cold**: 800 trajectories, one per entry, on freshly loaded tasks (nothing cached): the
  ground truth of every entry, one step per turn, every second entry mutated (its last
  ground-truth call dropped) so that passing and failing entries both occur;
- **warm**: 8 trajectories per entry (6,400: an RL group per task), all different where the
  entry allows (verbatim, last call dropped, first call dropped, a call repeated, two calls
  swapped, a turn emptied, a turn's calls split into one step each, the turns moved by one),
  scored on tasks whose ground-truth replay is cached: toolenv replays each entry's ground
  truth once, bfcl-eval once per trajectory (it has no such cache).

The official checker is timed the same way in both cases (it keeps nothing between entries).
One warm-up pass, then the best of ``--repeat``.

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


def group(task) -> list[list[list[list[str]]]]:
    """Eight model-like trajectories of one task (steps of call strings per turn)."""
    truth = [list(turn) for turn in task.ground_truth]
    last = max((t for t, turn in enumerate(truth) if turn), default=0)

    def edit(turn_index: int, change) -> list[list[str]]:
        turns = [list(turn) for turn in truth]
        turns[turn_index] = change(turns[turn_index])
        return turns

    variants = [
        truth,
        edit(last, lambda calls: calls[:-1]),
        edit(0, lambda calls: calls[1:]),
        edit(last, lambda calls: calls + calls[-1:]),
        edit(last, lambda calls: calls[::-1]),
        edit(last, lambda calls: []),
    ]
    out = [[[turn] if turn else [] for turn in run] for run in variants]
    out.append([[[call] for call in turn] for turn in truth])  # one call per step
    out.append([[]] + [[turn] if turn else [] for turn in truth[:-1]])  # turns moved by one
    return out


def single(task) -> list[list[list[list[str]]]]:
    """The cold case's one trajectory: verbatim for even entries, the last call dropped for odd ones."""
    return [group(task)[task.index % 2]]


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


def fresh_tasks() -> list:
    """The 800 tasks as new objects: no ground-truth replay cached on them."""
    from toolenv import data

    data._load_category.cache_clear()
    return load_tasks()


def timed(case: str, make_tasks, runs_of, repeat: int, entries: dict) -> dict:
    our_times, their_times = [], []
    for _ in range(repeat + 1):
        tasks = make_tasks()
        per_task = [runs_of(task) for task in tasks]
        flat_tasks = [task for task, runs in zip(tasks, per_task) for _ in runs]
        flat_runs = [run for runs in per_task for run in runs]
        start = time.perf_counter()
        mine = ours(flat_tasks, flat_runs)
        our_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        official_verdicts = theirs(flat_tasks, flat_runs, entries)
        their_times.append(time.perf_counter() - start)
        _clear_official()
        assert mine == official_verdicts, f"{case}: the two checkers disagree"
    best_ours, best_theirs = min(our_times[1:]), min(their_times[1:])
    return {"trajectories": len(flat_runs), "pass": sum(mine), "toolenv_s": best_ours, "bfcl_eval_s": best_theirs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    entries = {
        e["id"]: e for category in ("base", "miss_func", "miss_param", "long_context") for e in raw_entries(category)
    }
    cached = load_tasks()
    ours(cached, [group(task)[0] for task in cached])  # fills the ground-truth replay cache
    cases = {
        "cold": timed("cold", fresh_tasks, single, args.repeat, entries),
        "warm": timed("warm", lambda: cached, group, args.repeat, entries),
    }
    print(f"scoring trajectories, toolenv beside bfcl-eval's multi_turn_checker ({data_version()})")
    for case, row in cases.items():
        print(
            f"  {case:<5} {row['trajectories']:>5} trajectories ({row['pass']} pass)   "
            f"toolenv {row['toolenv_s'] * 1000:8.1f} ms   bfcl-eval {row['bfcl_eval_s'] * 1000:8.1f} ms   "
            f"ratio {row['bfcl_eval_s'] / row['toolenv_s']:.1f}x faster   (best of {args.repeat})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
