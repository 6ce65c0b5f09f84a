"""OOD variant generation: 800 tasks x 8 variant specs, beside what a user would do instead.

Measured in one run, best of ``--repeat`` passes after a warm-up (wall and process CPU time:
on a shared machine the wall time includes waiting for a core):

- ``generate in memory``: ``make_variant`` for every (spec, task) pair (6,400 variants);
- ``write JSONL``: the same plus serialising every record to ``tasks.jsonl`` (``--jsonl-only``);
- ``write JSONL + HF dataset + Parquet``: the full ``toolenv ood generate`` output (one pass);
- ``load JSONL``: reading the written set back (``toolenv.data.load_task_file``): what a user who
  generates once and reloads pays instead of generating on the fly;
- ``oracle episodes``: the same 6,400 variant episodes played through the environment with the
  oracle policy: what using the variants costs, to put generation in proportion.

The 8 specs cover every transform: six content transforms alone and two compositions that add
the format transforms.

    python bench/ood.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ood_variants import make_variant  # noqa: E402
from ood_variants.generate import JSONL, generate  # noqa: E402
from toolenv.data import data_version, load_task_file, load_tasks  # noqa: E402
from toolenv.env import BFCLEnv  # noqa: E402
from toolenv.expert import expert_actions  # noqa: E402

SPECS = (
    "rename_tools",
    "rename_params",
    "shuffle_schema",
    "rewrite_descriptions",
    "add_distractors",
    "perturb_values",
    "rename_tools+shuffle_schema+python_list_format",
    "perturb_values+add_distractors:near_duplicate+yaml_docs+tools_in_user+json_results",
)
SEED = 3


CPU: dict[str, float] = {}


def best(fn, repeat: int, name: str) -> float:
    """Best wall time of ``repeat`` runs after a warm-up (caches such as the official docs and
    parsed calls are filled, as in any real run); the CPU time of that run goes to ``CPU``."""
    fn()
    results = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        results.append((time.perf_counter() - wall, time.process_time() - cpu))
    CPU[name] = min(results)[1]
    return min(results)[0]


def once(fn, name: str) -> float:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    CPU[name] = time.process_time() - cpu
    return time.perf_counter() - wall


def in_memory(tasks: list) -> None:
    for spec in SPECS:
        for task in tasks:
            make_variant(task, spec, SEED)


def episodes(variants: list) -> int:
    env = BFCLEnv(call_format="hermes")
    passed = 0
    for variant in variants:
        env.tasks = [variant]  # play the exact variant object (no regeneration inside the timing)
        env.reset(options={"index": 0})
        for action in expert_actions(env.task, env.codec):
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                passed += reward == 1.0
                break
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    tasks = load_tasks()
    count = len(tasks) * len(SPECS)
    with tempfile.TemporaryDirectory() as folder:
        jsonl_dir, full_dir = Path(folder) / "jsonl", Path(folder) / "full"
        timings = {
            "generate in memory": best(lambda: in_memory(tasks), args.repeat, "generate in memory"),
            "write JSONL": best(
                lambda: generate(jsonl_dir, tasks, SPECS, SEED, tables=False), args.repeat, "write JSONL"
            ),
        }
        name = "write JSONL + HF dataset + Parquet"
        timings[name] = once(lambda: generate(full_dir, tasks, SPECS, SEED, tables=True), name)
        timings["load JSONL"] = best(lambda: load_task_file(jsonl_dir / JSONL), args.repeat, "load JSONL")
        size = (jsonl_dir / JSONL).stat().st_size
        variants = load_task_file(jsonl_dir / JSONL)
        outcome: dict[str, int] = {}
        timings["oracle episodes"] = once(lambda: outcome.update(passed=episodes(variants)), "oracle episodes")
        passed = outcome["passed"]
    generation = timings["generate in memory"]
    print(
        f"OOD generation, {len(tasks)} tasks x {len(SPECS)} specs = {count} variants, {data_version()}, "
        f"Python {platform.python_version()}, best of {args.repeat}"
    )
    print(f"  {'step':<36} {'wall s':>8} {'CPU s':>8} {'ms/variant':>11} {'vs generation':>14}")
    for name, seconds in timings.items():
        print(
            f"  {name:<36} {seconds:>8.2f} {CPU[name]:>8.2f} {1000 * seconds / count:>11.3f} {seconds / generation:>13.2f}x"
        )
    print(f"  JSONL size {size / 1e6:.1f} MB; oracle reward 1.0 on {passed}/{count} variant episodes")
    print(
        f"  generating a variant costs {generation / timings['oracle episodes']:.0%} of playing its oracle episode; "
        f"goal: all {count} in under 10 s -> {'met' if timings['write JSONL'] < 10 else 'NOT met'} "
        f"({timings['write JSONL']:.1f} s with JSONL)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "variants": count,
                    "specs": list(SPECS),
                    "seconds": timings,
                    "cpu_seconds": CPU,
                    "jsonl_bytes": size,
                    "oracle_passed": passed,
                },
                indent=2,
            )
        )
    return 0 if passed == count else 1


if __name__ == "__main__":
    sys.exit(main())
