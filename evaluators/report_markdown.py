"""The Markdown report of a scored run (terminals, READMEs)."""

from __future__ import annotations

from typing import Any

from evaluators.report_format import pct, points, positional_note
from evaluators.report_repeats import category_spread, mean_label, overall_spread, repeats_markdown, task_count


def _header(report: dict[str, Any]) -> list[str]:
    summary = report["summary"]
    tasks = f"{summary['tasks']} tasks" if "repeats" not in report else task_count(report)
    return [
        f"# toolenv evaluation — {report.get('model', {}).get('name', '?')}",
        "",
        f"- data: `{report.get('data_version')}`",
        f"- call format: `{report.get('call_format')}`, seed {report.get('seed')}, {tasks}",
        f"- command: `{report.get('command', '')}`",
        "",
    ]


def _category_table(report: dict[str, Any]) -> list[str]:
    """Accuracy per category and overall (with repeats: the mean of the runs ± std)."""
    summary, label = report["summary"], mean_label(report)
    lines = [
        f"| category | accuracy{f' ({label})' if label else ''} | correct | total | turn credit |",
        "|---|---|---|---|---|",
    ]
    for category, row in summary["categories"].items():
        credit = pct(row["turn_credit"]) if "turn_credit" in row else ""
        accuracy = pct(row["accuracy"]) + category_spread(report, category)
        lines.append(f"| {category} | {accuracy} | {row['correct']} | {row['total']} | {credit} |")
    return lines + [
        f"| **overall** (mean of the categories run) | **{pct(summary['overall'])}**{overall_spread(report)} | | | "
        f"{pct(summary.get('turn_credit', 0.0))} |",
        f"| overall, BFCL rule (missing categories count 0) | {pct(summary['overall_bfcl'])} | | | |",
    ]


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = [
        *_header(report),
        *_category_table(report),
        "",
        "Turn credit (not BFCL's score, which is the accuracy): the share of each task's turns "
        "passed before its first failing turn, averaged over the tasks (a turn that expects no "
        "call passes, as BFCL's checker passes it).",
        "",
        *repeats_markdown(report),
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
    for group in ood.get("format_sensitivity", ()):
        lines += ["", *format_sensitivity_markdown(group)]
    return lines


def format_sensitivity_markdown(group: dict[str, Any]) -> list[str]:
    """BFCL V4's format-sensitivity numbers of one group of format configurations."""
    overall, categories = group["overall"], group["categories"]
    base = f" on `{group['spec']}`" if group["spec"] else ""
    return [
        f"## Format sensitivity{base} ({len(group['formats'])} BFCL V4 format configurations)",
        "",
        "| | overall | " + " | ".join(categories) + " |",
        "|---|---|" + "---|" * len(categories),
        f"| max-Δ (points) | {100 * overall['max_delta']:.2f} | "
        + " | ".join(f"{100 * categories[c]['max_delta']:.2f}" for c in categories)
        + " |",
        f"| std (points) | {100 * overall['std']:.2f} | "
        + " | ".join(f"{100 * categories[c]['std']:.2f}" for c in categories)
        + " |",
        "",
        f"Best: `{overall['best']}` ({pct(overall['max'])}); worst: `{overall['worst']}` ({pct(overall['min'])}). "
        "max-Δ: largest minus smallest accuracy across the configurations; std: their sample standard "
        "deviation (BFCL V4's `accuracy_max_delta` and `accuracy_std`).",
    ]
