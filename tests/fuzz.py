"""Random call sequences drawn from the tool schemas, run on our executor and the official engine.

Argument values come from three pools: values that appear in the entry's ``initial_config``
(file names, users, symbols, card ids …), argument values that the ground truth of any entry
passes to the same parameter, and random literals of the schema's type (or of a wrong type).
Sometimes an optional argument is left out, a required one is dropped, or an unknown keyword
is added, so error paths are exercised too.

    python -m tests.fuzz --cls TravelAPI --sequences 500
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from collections import defaultdict
from functools import lru_cache
from typing import Any

from envs import backend_class
from tests.parity import Mismatch, implemented, replay_both
from toolenv.data import Task, load_tasks


@lru_cache(maxsize=1)
def ground_truth_values() -> dict[tuple[str, str], list[Any]]:
    """``(method, parameter) → values`` seen in the ground truth of all 800 entries."""
    pool: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for task in load_tasks():
        for turn in task.ground_truth_calls:
            for call in turn:
                for key, value in call.kwargs.items():
                    if value not in pool[(call.name, key)]:
                        pool[(call.name, key)].append(value)
    return dict(pool)


def config_values(config: Any, out: list[Any] | None = None) -> list[Any]:
    """Every scalar and every dict key in a scenario (candidates for string/number params)."""
    out = [] if out is None else out
    if isinstance(config, dict):
        for key, value in config.items():
            out.append(key)
            config_values(value, out)
    elif isinstance(config, list):
        for value in config:
            config_values(value, out)
    elif isinstance(config, (str, int, float)) and not isinstance(config, bool):
        if not (isinstance(config, str) and len(config) > 200):
            out.append(config)
    return out


def random_literal(rng: random.Random, kind: str | None, depth: int = 0) -> Any:
    if kind is None or rng.random() < 0.08:
        kind = rng.choice(["string", "integer", "float", "boolean", "array", "dict", "null"])
    if kind == "string":
        return (
            rng.choice(["", "a", "..", "/", "alex", "USD", "2026-01-01", "economy", "START", "NVDA"])
            if rng.random() < 0.5
            else "".join(
                rng.choice(string.ascii_letters + string.digits + " ._-/'\"") for _ in range(rng.randint(0, 12))
            )
        )
    if kind == "integer":
        return rng.choice([0, 1, -1, 2, 5, 10, 100, 12345, rng.randint(-1000, 100000)])
    if kind == "float":
        return rng.choice([0.0, 0.5, 1.0, -1.5, 30.0, 1000.0, round(rng.uniform(-100, 5000), 2)])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("array", "tuple") and depth < 2:
        return [
            random_literal(rng, None if rng.random() < 0.3 else "string", depth + 1) for _ in range(rng.randint(0, 3))
        ]
    if kind == "dict" and depth < 2:
        keys = [random_literal(rng, rng.choice(["string", "integer"])) for _ in range(rng.randint(0, 2))]
        return {key: random_literal(rng, None, depth + 1) for key in keys if isinstance(key, (str, int))}
    return None


#: parameters whose huge values the backends refuse deliberately instead of computing for minutes
_BOUNDED = {"precision", "decimal_places", "exponent"}


def _huge_number(value: Any) -> bool:
    """A number, or a numeric string (mpmath accepts those as a precision), above 1000."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):
        return False
    return number is not None and number == number and abs(number) > 1000 and abs(number) != float("inf")


def random_call(rng: random.Random, task: Task, docs: list[dict], values: list[Any]) -> str:
    doc = rng.choice(docs)
    name = doc["name"]
    params = doc["parameters"].get("properties", {})
    required = set(doc["parameters"].get("required", []))
    kwargs: dict[str, Any] = {}
    for param, schema in params.items():
        if param not in required and rng.random() < 0.4:
            continue
        if param in required and rng.random() < 0.03:
            continue
        seen = ground_truth_values().get((name, param), [])
        roll = rng.random()
        if seen and roll < 0.55:
            value = rng.choice(seen)
        elif values and roll < 0.8:
            value = rng.choice(values)
            if schema.get("type") == "array" and rng.random() < 0.7:
                value = [value]
        else:
            value = random_literal(rng, schema.get("type"))
        if param in _BOUNDED and _huge_number(value):
            # beyond this our backends refuse on purpose (hostile input, tested elsewhere) and the
            # official engine can run for minutes (e.g. a log at 10^8 digits)
            value = int(float(value)) % 1000
        kwargs[param] = value
    if rng.random() < 0.02:
        kwargs["unexpected"] = 1
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name}({arguments})"


def random_sequence(rng: random.Random, task: Task, turns: int = 3, calls_per_turn: int = 6) -> list[list[str]]:
    docs = [doc for cls in task.involved_classes for doc in backend_class(cls).tool_docs()]
    values = config_values(task.initial_config)
    sequence = []
    for _ in range(turns):
        turn = [random_call(rng, task, docs, values) for _ in range(rng.randint(0, calls_per_turn))]
        # interleave ground-truth calls so that deep states (logged in, booked …) are reached
        gt = [c for t in task.ground_truth for c in t]
        for call in rng.sample(gt, min(len(gt), rng.randint(0, 4))):
            turn.insert(rng.randint(0, len(turn)), call)
        sequence.append(turn)
    return sequence


def fuzz(tasks: list[Task], sequences: int, seed: int) -> tuple[int, list[Mismatch]]:
    rng = random.Random(seed)
    total_calls = 0
    mismatches: list[Mismatch] = []
    for _ in range(sequences):
        task = rng.choice(tasks)
        calls, found = replay_both(task, random_sequence(rng, task))
        total_calls += calls
        mismatches += found
    return total_calls, mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cls", help="only entries involving this official class name")
    parser.add_argument("--sequences", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=10)
    args = parser.parse_args(argv)
    tasks = load_tasks()
    if args.cls:
        tasks = [t for t in tasks if args.cls in t.involved_classes]
    tasks = [t for t in tasks if implemented(t)]
    calls, mismatches = fuzz(tasks, args.sequences, args.seed)
    for mismatch in mismatches[: args.show]:
        print(mismatch)
    print(f"{args.sequences} sequences, {calls} calls, {len(mismatches)} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
