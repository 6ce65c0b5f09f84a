"""The reports' parts for a run of several repeats (``toolenv eval --repeats K``): the labels
of the headline numbers (the mean of the K runs ± std), the repeats table (per category the
mean, ± std, pass^1..pass^K, turn credit and positional arguments dropped), pass@k, and the
HTML task rows that show c/K per task with each repeat's episode inside. A report without a
``repeats`` section gets none of this (every function returns nothing for it), so a
one-repeat report is exactly what it always was."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any, Callable, Sequence

from evaluators.report_format import pct, spread
from evaluators.scoring import repeat_of
from toolenv.trajectory import Trajectory


def mean_label(report: dict[str, Any]) -> str:
    """``mean of K runs ± std`` (empty for a one-repeat report)."""
    repeats = report.get("repeats")
    return f"mean of {repeats['runs']} runs ± std" if repeats else ""


def category_spread(report: dict[str, Any], category: str) -> str:
    """`` ± 5.10``: the std of a category over the runs (empty without repeats)."""
    row = report.get("repeats", {}).get("categories", {}).get(category)
    return f" {spread(row['std'])}" if row and row["std"] is not None else ""


def overall_spread(report: dict[str, Any]) -> str:
    """`` ± 3.20``: the std of the overall accuracy over the runs (empty without repeats)."""
    std = report.get("repeats", {}).get("overall", {}).get("std")
    return f" {spread(std)}" if std is not None else ""


def overall_suffix(report: dict[str, Any]) -> str:
    """`` (mean of 4 runs, ± 3.20)`` after the overall accuracy (empty without repeats)."""
    if "repeats" not in report:
        return ""
    return f" (mean of {report['repeats']['runs']} runs,{overall_spread(report)})"


def repeats_meta_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The run-table row naming the repeats and their seeds (none without repeats)."""
    if "repeats" not in report:
        return []
    return [("repeats", f"{report['repeats']['runs']} (repeat r samples with seed {report.get('seed')} + r)")]


def task_count(report: dict[str, Any]) -> str:
    """``8 tasks × 4 runs`` for a repeated run (its summary counts the episodes of all runs)."""
    repeats = report["repeats"]
    return f"{len(repeats['tasks'])} tasks × {repeats['runs']} runs"


def _estimates(row: dict[str, Any], key: str, runs: int) -> list[str]:
    return [pct(row[key][str(k)]) if str(k) in row[key] else "" for k in range(1, runs + 1)]


def _table_rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(label, cells) of the repeats table: per category, then overall."""
    repeats, summary = report["repeats"], report["summary"]
    runs = repeats["runs"]
    rows = []
    for category, row in repeats["categories"].items():
        cells = [str(row["tasks"]), pct(row["mean"]), spread(row["std"]), *_estimates(row, "pass^k", runs)]
        rows.append((category, [*cells, pct(row["turn_credit"]), str(row["positional_dropped"])]))
    overall = repeats["overall"]
    cells = [str(len(repeats["tasks"])), pct(overall["mean"]), spread(overall["std"])]
    cells += _estimates(overall, "pass^k", runs)
    dropped = summary.get("positional_dropped", {"calls": 0})["calls"]
    rows.append(("overall", [*cells, pct(summary.get("turn_credit", 0.0)), str(dropped)]))
    return rows


def _headers(runs: int) -> list[str]:
    return [
        "tasks",
        f"mean of {runs} runs",
        "± std (points)",
        *(f"pass^{k}" for k in range(1, runs + 1)),
        "turn credit",
        "positional args dropped (calls)",
    ]


def _pass_at_rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    repeats = report["repeats"]
    rows = [(c, _estimates(row, "pass@k", repeats["runs"])) for c, row in repeats["categories"].items()]
    return rows + [("overall", _estimates(repeats["overall"], "pass@k", repeats["runs"]))]


def _passes_histogram(report: dict[str, Any]) -> list[tuple[str, int]]:
    """How many tasks passed c of their n trials, most passes first."""
    counts = Counter((row["passes"], row["trials"]) for row in report["repeats"]["tasks"])
    return [(f"{c}/{n}", counts[c, n]) for c, n in sorted(counts, key=lambda key: (-key[1], -key[0]))]


def notes(report: dict[str, Any]) -> list[str]:
    repeats = report["repeats"]
    lines = [
        f"Repeat r samples with seed {report.get('seed')} + r. The accuracies above are the mean of the "
        f"{repeats['runs']} runs (each run's score is BFCL's 0/1 entry accuracy); ± std: the {repeats['std']}, "
        f"in percentage points. pass^k and pass@k: {repeats['estimators']}. Correct and total, turn credit, "
        "positional arguments and the tables below count the episodes of all runs.",
    ]
    if not repeats["complete"]:
        lines.append("Incomplete run: some tasks have fewer trials than there are runs (resume it to finish).")
    return lines


def _md_table(headers: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]


def repeats_markdown(report: dict[str, Any]) -> list[str]:
    """The Markdown section of a repeated run (nothing without repeats)."""
    if "repeats" not in report:
        return []
    runs = report["repeats"]["runs"]
    lines = [f"## Repeats: mean of {runs} runs ± std, pass^k and pass@k", ""]
    lines += _md_table(["category", *_headers(runs)], _table_rows(report))
    lines += ["", *_md_table(["category", *(f"pass@{k}" for k in range(1, runs + 1))], _pass_at_rows(report))]
    histogram = [(label, [str(count)]) for label, count in _passes_histogram(report)]
    lines += ["", *_md_table(["passes of trials", "tasks"], histogram)]
    variants = report["repeats"].get("variants") or {}
    if variants:
        rows = [(f"`{spec}`", _variant_cells(row, runs)) for spec, row in variants.items()]
        lines += ["", *_md_table(["OOD variant", *_headers(runs)[:-2]], rows)]
    return [*lines, "", *notes(report), ""]


def _variant_cells(row: dict[str, Any], runs: int) -> list[str]:
    overall = row["overall"]
    return [str(row["tasks"]), pct(overall["mean"]), spread(overall["std"]), *_estimates(overall, "pass^k", runs)]


# -- HTML ----------------------------------------------------------------------------------

_STYLE = """<style>
.badge.some { background: #b26a00; }
details.repeat { border-left: 3px solid #ccd; margin: 4px 0 4px 8px; padding: 2px 8px; }
details.repeat.pass, details.repeat.fail, details.task.some { background: none; }
table#repeats td, table#pass-at-k td { text-align: right; }
table#repeats td:first-child, table#pass-at-k td:first-child { text-align: left; }
</style>"""
#: marks what the repeats table shows (read by the report's browser test)
_SCRIPT = """<script>
window.addEventListener("load", () => {
  const shown = el => { const box = el.getBoundingClientRect(); return box.width > 0 && box.height > 0; };
  const data = document.body.dataset;
  data.repeatsRows = document.querySelectorAll("#repeats tr.row").length;
  data.repeatsColumns = Array.from(document.querySelectorAll("#repeats th")).filter(shown)
    .map(th => th.dataset.column).join(" ");
  data.repeatedTasks = document.querySelectorAll("details.task details.repeat").length;
});
</script>"""


def _column_id(header: str) -> str:
    for prefix, name in (("mean", "mean"), ("±", "std"), ("turn", "turn-credit"), ("positional", "positional")):
        if header.startswith(prefix):
            return name
    return header.replace("^", "-hat-").replace("@", "-at-")


def _html_table(table_id: str, headers: list[str], rows: list[tuple[str, list[str]]]) -> str:
    esc = html.escape
    head = "".join(f'<th data-column="{esc(_column_id(h))}">{esc(h)}</th>' for h in headers)
    body = "".join(
        f'<tr class="row"><td>{esc(label)}</td>' + "".join(f"<td>{esc(cell)}</td>" for cell in cells) + "</tr>"
        for label, cells in rows
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def repeats_html(report: dict[str, Any]) -> str:
    """The HTML section of a repeated run (empty without repeats)."""
    if "repeats" not in report:
        return ""
    runs = report["repeats"]["runs"]
    pass_at = _html_table("pass-at-k", ["category", *(f"pass@{k}" for k in range(1, runs + 1))], _pass_at_rows(report))
    histogram = _html_table(
        "passes", ["passes of trials", "tasks"], [(k, [str(v)]) for k, v in _passes_histogram(report)]
    )
    return (
        f"{_STYLE}<h2>Repeats: mean of {runs} runs ± std, pass^k and pass@k</h2>"
        f"{_html_table('repeats', ['category', *_headers(runs)], _table_rows(report))}"
        f"<h3>pass@k</h3>{pass_at}<h3>Tasks by passes</h3>{histogram}"
        + "".join(f"<p>{html.escape(line)}</p>" for line in notes(report))
        + _SCRIPT
    )


def repeated_task_rows(
    rows: Sequence[dict[str, Any]],
    trajectories: Sequence[Trajectory],
    css: str,
    prefix: str,
    view: Callable[[Trajectory], str],
) -> list[str]:
    """One ``<details>`` per task showing c/K passed (id ``prefix + task id``, so links to a task
    still open it), holding one ``<details class="repeat">`` per repeat with its episode
    (``view``)."""
    esc = html.escape
    by_episode = {(t.task_id, repeat_of(t)): t for t in trajectories}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["task_id"], []).append(row)
    out = []
    for task_id, group in groups.items():
        passes = sum(bool(row["passed"]) for row in group)
        status = "pass" if passes == len(group) else "fail" if passes == 0 else "some"
        inner = "".join(
            _repeat_row(row, by_episode.get((task_id, row.get("repeat") or 0)), prefix, view) for row in group
        )
        out.append(
            f'<details class="{css} {status}" id="{esc(prefix + task_id)}"><summary><b>{esc(task_id)}</b> '
            f'<span class="badge {status}">{passes}/{len(group)} passed</span></summary>{inner}</details>'
        )
    return out


def _repeat_row(
    row: dict[str, Any], trajectory: Trajectory | None, prefix: str, view: Callable[[Trajectory], str]
) -> str:
    esc = html.escape
    status = "pass" if row["passed"] else "fail"
    repeat = row.get("repeat") or 0
    where = "" if row["failed_turn"] in (None, -1) else f" at turn {row['failed_turn']}"
    return (
        f'<details class="repeat {status}" id="{esc(prefix + row["task_id"])}-r{repeat}"><summary>repeat {repeat} '
        f'<span class="badge {status}">{status}</span> {esc(row["failure"] or "")}{where}</summary>'
        f"{view(trajectory) if trajectory else '<p>no trajectory</p>'}</details>"
    )
