"""Verdict parity with the official pipeline, as ``bfcl evaluate`` runs it, on model-like records.

:mod:`tests.bfcl_records` builds at least 10,000 result records per run (prompting and FC
formats, every generator kind) from the 800 tasks; each is scored by toolenv
(``trajectory_from_bfcl`` + ``score_trajectory``) and by the official pipeline (decode each step
with the official decoder, skip empty or undecodable steps, the force-terminated turn-count
rule, ``multi_turn_checker``). Both sides are told the record's format, as ``bfcl evaluate``
knows it from the model's handler. Every record must get the same verdict (and, where both
fail, the same failure kind), except a record in which BFCL runs a nested call
(``f(a=g(b=1))``, :func:`runs_a_nested_call`): toolenv never runs model code, so there the
inner call is an error; such records are counted. A failure lists the mismatches by format
and kind, with examples. A sample is also checked against the official runner function itself, so that the
harness cannot drift from ``bfcl evaluate``.

For quick iteration on the decoders:

    python -m tests.test_pipeline_parity                 # the CI records, mismatch summary
    python -m tests.test_pipeline_parity --all           # every kind on every task (~60k records)
    python -m tests.test_pipeline_parity --kind name_value --kind fc_multi_key --examples 10
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import pytest

from tests.bfcl_records import (
    FORMATS,
    OFFICIAL_TO_TOOLENV,
    PROMPTING,
    GeneratedRecord,
    generate,
    is_fc_record,
    kinds_for,
    official_verdict,
    runner_verdict,
    toolenv_verdict,
)
from tests.oracle import require_official
from toolenv.data import load_tasks
from toolenv.formats.bfcl_decode import BFCLDecodeError, decode_step

#: holds for every pinned release: CI runs this file again on the paper's (see tests/release_oracle.py)
pytestmark = pytest.mark.release

SEED = int(os.environ.get("TOOLENV_PIPELINE_SEED", "0"))
MIN_RECORDS = 10_000
MIN_PER_FORMAT = 4_000


def runs_a_nested_call(record: dict) -> bool:
    """Whether BFCL would run a call nested as another call's argument in this record
    (``f(a=g(b=1))``): its engine evaluates the execution string, so the inner call runs and
    its return value is passed on. toolenv runs literal arguments only (never model code,
    non-negotiable 2): such a call is an error there. The one divergence the test allows."""
    result = record.get("result")
    if not isinstance(result, list):
        return False
    for turn in result:
        for step in turn if isinstance(turn, list) else []:
            try:
                strings = decode_step(step, not isinstance(step, str)).strings
            except BFCLDecodeError:
                continue
            for text in strings:
                try:
                    tree = ast.parse(text, mode="eval").body
                except SyntaxError:
                    continue
                if isinstance(tree, ast.Call) and any(
                    isinstance(node, ast.Call) for kw in tree.keywords for node in ast.walk(kw.value)
                ):
                    return True
    return False


@dataclass(frozen=True)
class Outcome:
    item: GeneratedRecord
    official: tuple[bool, str | None]
    ours: tuple[bool, str | None]

    @property
    def verdicts_differ(self) -> bool:
        return self.official[0] != self.ours[0]

    @property
    def failures_differ(self) -> bool:
        """Both fail, for different reasons (the official error type mapped to toolenv's)."""
        both_fail = not self.official[0] and not self.ours[0]
        return both_fail and OFFICIAL_TO_TOOLENV.get(self.official[1] or "", self.official[1]) != self.ours[1]


def compare(items: Iterable[GeneratedRecord]) -> list[Outcome]:
    """Both verdicts on every record. The format is passed to both sides, as ``bfcl evaluate``
    knows it from the model's handler."""
    return [
        Outcome(item, official_verdict(item.record, item.fc), toolenv_verdict(item.record, item.fc)) for item in items
    ]


def _example(outcome: Outcome) -> str:
    item = outcome.item
    return f"    {item.record['id']}: {item.detail}\n      official {outcome.official}  toolenv {outcome.ours}"


def summary(outcomes: Sequence[Outcome], examples: int = 3, failures: bool = False, seed: int = SEED) -> str:
    """Mismatches by format and kind (verdict mismatches; with ``failures``, the records where
    both fail for different reasons), and a few examples of each."""
    differ = (lambda o: o.failures_differ) if failures else (lambda o: o.verdicts_differ)
    what = "failure-kind mismatches (both fail)" if failures else "verdict mismatches"
    totals = Counter(o.item.fmt for o in outcomes)
    bad = [o for o in outcomes if differ(o)]
    lines = [
        f"pipeline parity, seed {seed}: {len(outcomes)} records "
        f"({', '.join(f'{fmt} {totals[fmt]}' for fmt in FORMATS)}), {len(bad)} {what}"
    ]
    unknowable = sum(
        o.item.fc and isinstance(o.item.record["result"], list) and not is_fc_record(o.item.record) for o in outcomes
    )
    lines.append(
        f"  ({unknowable} records' format cannot be told from their shape: FC records whose steps are all text)"
    )
    if not bad:
        return "\n".join(lines)
    records = Counter((o.item.fmt, o.item.kind) for o in outcomes)
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in bad:
        groups.setdefault((outcome.item.fmt, outcome.item.kind), []).append(outcome)
    lines.append(f"  {'format':<10} {'kind':<26} {'records':>7} {'mismatch':>8}  official pass/ours fail, the reverse")
    for (fmt, kind), group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        official_only = sum(o.official[0] for o in group)
        lines.append(
            f"  {fmt:<10} {kind:<26} {records[(fmt, kind)]:>7} {len(group):>8}  {official_only}/{len(group) - official_only}"
        )
    lines.append("examples:")
    for (fmt, kind), group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  [{fmt} {kind}]")
        lines += [_example(o) for o in group[:examples]]
    return "\n".join(lines)


_RUN: dict[str, object] = {}


def ci_outcomes() -> list[Outcome]:
    """The default suite's records, scored both ways once per process."""
    if "outcomes" not in _RUN:
        require_official()
        started = time.perf_counter()
        _RUN["outcomes"] = compare(generate(seed=SEED))
        _RUN["seconds"] = time.perf_counter() - started
    return _RUN["outcomes"]  # type: ignore[return-value]


def test_generator_is_deterministic_and_covers_every_kind() -> None:
    tasks = load_tasks()[::97]
    first = [(i.kind, i.fmt, i.record) for i in generate(seed=SEED, tasks=tasks)]
    assert first == [(i.kind, i.fmt, i.record) for i in generate(seed=SEED, tasks=tasks)]
    assert first != [(i.kind, i.fmt, i.record) for i in generate(seed=SEED + 1, tasks=tasks)]
    items = list(generate(seed=SEED))
    assert len(items) >= MIN_RECORDS
    for fmt in FORMATS:
        made = Counter(i.kind for i in items if i.fmt == fmt)
        assert sum(made.values()) >= MIN_PER_FORMAT, fmt
        expected = set(kinds_for(fmt)) | ({"verbatim_task_positional"} if fmt == PROMPTING else set())
        assert set(made) == expected, (fmt, expected ^ set(made))
        assert min(made.values()) >= 8, (fmt, made.most_common()[-5:])


def test_pipeline_verdicts_match_official() -> None:
    outcomes = ci_outcomes()
    print(f"\n{len(outcomes)} records scored both ways in {_RUN['seconds']:.1f}s")
    assert len(outcomes) >= MIN_RECORDS
    for fmt in FORMATS:
        mine = [o for o in outcomes if o.item.fmt == fmt]
        assert len(mine) >= MIN_PER_FORMAT, fmt
        # the harness itself: every ground truth passes officially, and the records exercise
        # every official outcome (a broken harness that fails everything would agree too often)
        verbatim = [o for o in mine if o.item.kind == "verbatim"]
        assert verbatim and all(o.official[0] for o in verbatim), [
            o.item.record["id"] for o in verbatim if not o.official[0]
        ][:5]
        assert {o.official[1] for o in mine} >= {None, *OFFICIAL_TO_TOOLENV}, fmt
    differ = [o for o in outcomes if o.verdicts_differ]
    nested = sum(runs_a_nested_call(o.item.record) for o in outcomes)
    print(f"{nested} records run a nested call officially; {len(differ)} of them get another verdict")
    assert nested >= 100  # the divergence is exercised, so the allowance below is not vacuous
    assert all(runs_a_nested_call(o.item.record) for o in differ), summary([o for o in differ])


def test_harness_decides_as_the_official_runner() -> None:
    """The harness's pipeline (decode, skip, turn-count rule, multi_turn_checker) gives what the
    official runner function (``_evaluate_single_multi_turn_entry``) gives, on a sample."""
    sample = ci_outcomes()[::25]
    differ = [
        (o.item.kind, o.item.fmt, o.item.record["id"])
        for o in sample
        if runner_verdict(o.item.record, o.item.fc) != o.official
    ]
    assert len(sample) >= 400 and not differ, differ[:10]


def test_failure_kinds_match_official() -> None:
    """Where both fail, they fail for the same reason (official error type ↔ toolenv failure)."""
    outcomes = ci_outcomes()
    differ = [o for o in outcomes if o.failures_differ and not runs_a_nested_call(o.item.record)]
    assert not differ, summary(differ, failures=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="every kind on every task")
    parser.add_argument("--kind", action="append", help="only this generator kind (repeatable)")
    parser.add_argument("--format", choices=FORMATS, action="append", help="only this format")
    parser.add_argument("--task", action="append", help="only this task id (repeatable)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--examples", type=int, default=3, help="examples per kind")
    args = parser.parse_args(argv)
    require_official_for_cli()
    every = args.all or bool(args.kind) or bool(args.task)  # else: the CI records
    options = {"per_task": None} if every else {}
    items = generate(seed=args.seed, formats=args.format or FORMATS, tasks=args.task, kinds=args.kind, **options)
    started = time.perf_counter()
    outcomes = compare(items)
    elapsed = time.perf_counter() - started
    print(summary(outcomes, args.examples, seed=args.seed))
    print()
    print(summary(outcomes, args.examples, failures=True, seed=args.seed))
    print(f"\n{len(outcomes)} records in {elapsed:.1f}s")
    return 1 if any(o.verdicts_differ for o in outcomes) else 0


def require_official_for_cli() -> None:
    try:
        import bfcl_eval  # noqa: F401
    except ImportError:
        sys.exit("bfcl-eval is not installed (pip install --no-deps -r tests/oracle-requirements.txt)")


if __name__ == "__main__":
    sys.exit(main())
