"""The Markdown report of a scored run (terminals, READMEs), and the number formats the
reports share."""

from __future__ import annotations

from typing import Any


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = [
        f"# toolenv evaluation — {report.get('model', {}).get('name', '?')}",
        "",
        f"- data: `{report.get('data_version')}`",
        f"- call format: `{report.get('call_format')}`, seed {report.get('seed')}, {summary['tasks']} tasks",
        f"- command: `{report.get('command', '')}`",
        "",
        "| category | accuracy | correct | total | turn credit |",
        "|---|---|---|---|---|",
    ]
    for category, row in summary["categories"].items():
        credit = pct(row["turn_credit"]) if "turn_credit" in row else ""
        lines.append(f"| {category} | {pct(row['accuracy'])} | {row['correct']} | {row['total']} | {credit} |")
    lines += [
        f"| **overall** (mean of the categories run) | **{pct(summary['overall'])}** | | | "
        f"{pct(summary.get('turn_credit', 0.0))} |",
        f"| overall, BFCL rule (missing categories count 0) | {pct(summary['overall_bfcl'])} | | | |",
        "",
        "Turn credit (not BFCL's score, which is the accuracy): the share of each task's turns "
        "passed before its first failing turn, averaged over the tasks (a turn that expects no "
        "call passes, as BFCL's checker passes it).",
        "",
        "| API (every task under each API it involves) | accuracy | total |",
        "|---|---|---|",
    ]
    lines += [f"| {api} | {pct(row['accuracy'])} | {row['total']} |" for api, row in summary["by_api"].items()]
    lines += ["", "| turns | accuracy | total |", "|---|---|---|"]
    lines += [f"| {turns} | {pct(row['accuracy'])} | {row['total']} |" for turns, row in summary["by_turns"].items()]
    lines += ["", "| outcome | entries |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in summary["failures"].items()]
    lines += [
        "",
        f"Structural states of {summary['assistant_messages']} assistant messages:",
        "",
        "| state | share |",
        "|---|---|",
    ]
    lines += [f"| {state} | {pct(share)} |" for state, share in summary["structure"].items()]
    lines += ["", positional_note(summary)]
    if "ood" in report:
        lines += ["", *ood_markdown(report["ood"])]
    return "\n".join(lines) + "\n"


def positional_note(summary: dict[str, Any]) -> str:
    """How many calls lost positional arguments to BFCL's python decoder (as ``bfcl evaluate``
    scores them), so a reader sees when that decided a score."""
    dropped = summary.get("positional_dropped", {"calls": 0, "tasks": 0})
    return (
        f"Positional arguments dropped (BFCL's python decoder): {dropped['calls']} call(s) "
        f"in {dropped['tasks']} task(s)."
    )


def points(value: float | None) -> str:
    return "" if value is None else f"{100 * value + 0.0:+.2f}"  # + 0.0: no "-0.00"


def ood_markdown(ood: dict[str, Any]) -> list[str]:
    """In-distribution and each OOD variant side by side, with the drop in points."""
    base = ood["in_distribution"]
    categories = list(base["categories"])
    seeds = ", ".join(map(str, ood.get("seeds", []))) or "-"
    lines = [
        f"## In distribution vs OOD variants (seed {seeds})",
        "",
        "| variant | tasks | overall | drop (points) | " + " | ".join(categories) + " | lost | gained |",
        "|---|---|---|---|" + "---|" * len(categories) + "---|---|",
        f"| in-distribution | {base['tasks']} | {pct(base['overall'])} | | "
        + " | ".join(pct(base["categories"][c]["accuracy"]) for c in categories)
        + " | | |",
    ]
    for row in ood["variants"]:
        cells = []
        for category in categories:
            value = row["categories"].get(category)
            cells.append(
                ""
                if value is None
                else f"{pct(value['accuracy'])} ({points(-value['drop'] if value['drop'] is not None else None)})"
            )
        lines.append(
            f"| `{row['spec']}` | {row['tasks']} | {pct(row['overall'])} | {points(-row['drop'])} | "
            + " | ".join(cells)
            + f" | {row['lost']} | {row['gained']} |"
        )
    lines += [
        "",
        "Drop: variant minus in-distribution accuracy, in percentage points (negative: the variant is harder). "
        "lost/gained: tasks passed in distribution but failed as the variant, and the reverse.",
    ]
    return lines
