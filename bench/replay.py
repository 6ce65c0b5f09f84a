"""Ground-truth replay of all 800 BFCL multi-turn entries: toolenv beside bfcl-eval, same run.

For every entry both engines do what the checker does on a self-check: build a "model" side and
a "ground truth" side on fresh instances, execute each turn's ground-truth calls on both, and
compare the public state of every instance after every turn (Python ``!=``, as the checker).
One warm-up pass, then the best of ``--repeat`` passes for each engine.

    python bench/replay.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils  # noqa: E402

from toolenv.data import data_version, load_tasks  # noqa: E402
from toolenv.executor import Session  # noqa: E402


def _public(instance: object) -> dict:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def toolenv_pass(tasks: list) -> int:
    mismatches = 0
    for task in tasks:
        model = Session.for_task(task)
        truth = Session.for_task(task)
        for turn in task.ground_truth_calls:
            model.execute_all(turn)
            truth.execute_all(turn)
            for name, instance in truth.instances.items():
                if instance.public_state() != model.instances[name].public_state():
                    mismatches += 1
    return mismatches


def official_pass(tasks: list, tag: str) -> int:
    mismatches = 0
    execute = multi_turn_utils.execute_multi_turn_func_call
    for task in tasks:
        config, classes = task.initial_config, list(task.involved_classes)
        for turn in task.ground_truth:
            _, model = execute(list(turn), config, classes, f"bench{tag}", task.id, task.long_context, True)
            _, truth = execute(
                list(turn), config, classes, f"bench{tag}_ground_truth", task.id, task.long_context, True
            )
            for name, instance in truth.items():
                if _public(instance) != _public(model[name]):
                    mismatches += 1
    return mismatches


def _clear_official() -> None:
    module_globals = vars(multi_turn_utils)
    for key in [k for k in module_globals if k.startswith("bench")]:
        del module_globals[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    tasks = load_tasks()
    calls = sum(len(turn) for t in tasks for turn in t.ground_truth) * 2

    ours, theirs = [], []
    for attempt in range(args.repeat + 1):  # attempt 0 warms caches and imports on both sides
        start = time.perf_counter()
        ours_mismatch = toolenv_pass(tasks)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        their_mismatch = official_pass(tasks, str(attempt))
        theirs.append(time.perf_counter() - start)
        _clear_official()  # outside the timed region: the official engine never frees instances
        assert ours_mismatch == their_mismatch == 0, (ours_mismatch, their_mismatch)
    best_ours, best_theirs = min(ours[1:]), min(theirs[1:])
    result = {
        "data_version": data_version(),
        "entries": len(tasks),
        "calls_executed": calls,
        "toolenv_s": round(best_ours, 4),
        "bfcl_eval_s": round(best_theirs, 4),
        "speedup": round(best_theirs / best_ours, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"ground-truth replay of {len(tasks)} entries ({calls} calls, both sides, state compared per turn)")
    print(f"  data       {result['data_version']}")
    print(f"  toolenv    {best_ours * 1000:8.1f} ms   (best of {args.repeat})")
    print(f"  bfcl-eval  {best_theirs * 1000:8.1f} ms   (best of {args.repeat})")
    print(f"  ratio      {result['speedup']:.1f}x faster")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
