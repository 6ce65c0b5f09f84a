"""The HTML report of a scored run: one self-contained page, the headline scores first,
matplotlib plots embedded as PNG, then a browsable per-task view (per turn the expected calls
beside the model's, and the state difference when a turn failed; OOD variant episodes get the
same view)."""

from __future__ import annotations

import base64
import html
import io
import json
from itertools import zip_longest
from typing import Any, Sequence

from evaluators.report_format import pct, points, positional_note
from evaluators.report_repeats import (
    category_spread,
    mean_label,
    overall_spread,
    overall_suffix,
    repeated_task_rows,
    repeats_html,
    repeats_meta_rows,
    task_count,
)
from evaluators.scoring import FORMAT_KEY, repeat_of, trajectory_task
from toolenv.data import DataError, Task
from toolenv.trajectory import Trajectory


def _figure_png(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.2, 3.0), dpi=110)
    draw(axis)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _bars(values: dict[str, float], title: str, percent: bool = True) -> str:
    def draw(axis: Any) -> None:
        labels = list(values)
        heights = [100 * v if percent else v for v in values.values()]
        axis.bar(labels, heights, color="#3b6ea5")
        axis.set_title(title, fontsize=10)
        if percent:
            axis.set_ylim(0, 100)
            axis.set_ylabel("%")
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
        for x, h in enumerate(heights):
            axis.annotate(f"{h:.1f}" if percent else f"{h:g}", (x, h), ha="center", va="bottom", fontsize=7)

    return _figure_png(draw)


def _headline(report: dict[str, Any]) -> str:
    """The scores a reader comes for, first and large: overall, then each category (and each OOD
    variant's overall when the run has variants)."""
    esc = html.escape
    summary = report["summary"]
    cards = "".join(
        f'<div class="card" id="score-{esc(category)}"><div class="value">{pct(row["accuracy"])}</div>'
        f'<div class="label">{esc(category)} <small>({row["correct"]}/{row["total"]})</small>'
        f"{_spread_note(report, category_spread(report, category))}"
        f'<br><small class="turn-credit">turn credit {pct(row.get("turn_credit", 0.0))}</small></div></div>'
        for category, row in summary["categories"].items()
    )
    variants = ""
    if "ood" in report:
        variants = (
            "<div class='cards variants'>"
            + "".join(
                f'<div class="card variant"><div class="value">{pct(row["overall"])}</div>'
                f'<div class="label">OOD <code>{esc(row["spec"])}</code> <small>({points(-row["drop"])} points)</small></div></div>'
                for row in report["ood"]["variants"]
            )
            + "</div>"
        )
    tasks = f"{summary['tasks']} tasks" if "repeats" not in report else task_count(report)
    return (
        f'<section id="headline"><div class="card main" id="score-overall"><div class="value">{pct(summary["overall"])}</div>'
        f'<div class="label">overall, mean of {len(summary["categories"])} {"category" if len(summary["categories"]) == 1 else "categories"} run ({tasks})'
        f"{_spread_note(report, overall_spread(report))}"
        f"<br><small>BFCL rule (missing categories count 0): {pct(summary['overall_bfcl'])}</small>"
        f"<br><small class='turn-credit'>turn credit (turns passed before the first failure): "
        f"{pct(summary.get('turn_credit', 0.0))}</small></div></div>"
        f'<div class="cards">{cards}</div>{variants}</section>'
    )


def _spread_note(report: dict[str, Any], spread: str) -> str:
    """With repeats, the line under a headline number saying it is the mean of the runs ± std."""
    label = mean_label(report)
    return f"<br><small class='spread'>{label.replace(' ± std', spread)}</small>" if label else ""


def _task_of(trajectory: Trajectory) -> Task | None:
    """The task (or rebuilt OOD variant) a trajectory was played on; None when it cannot be
    found (the view then shows the model's side only)."""
    try:
        return trajectory_task(trajectory)
    except (DataError, ValueError, KeyError):
        return None


def _task_rows(rows: Sequence[dict[str, Any]], trajectories: Sequence[Trajectory], css: str, prefix: str) -> list[str]:
    esc = html.escape
    by_id = {t.task_id: t for t in trajectories}
    out = []
    for task in rows:
        trajectory = by_id.get(task["task_id"])
        status = "pass" if task["passed"] else "fail"
        out.append(
            f'<details class="{css} {status}" id="{esc(prefix + task["task_id"])}"><summary><b>{esc(task["task_id"])}</b> '
            f'<span class="badge {status}">{status}</span> {esc(task["failure"] or "")}'
            f"{'' if task['failed_turn'] in (None, -1) else ' at turn ' + str(task['failed_turn'])}</summary>"
            f"{_task_view(trajectory, _task_of(trajectory)) if trajectory else '<p>no trajectory</p>'}</details>"
        )
    return out


def _rows(
    report: dict[str, Any], rows: Sequence[dict[str, Any]], trajectories: Sequence[Trajectory], css: str, prefix: str
) -> list[str]:
    """The task rows: one per episode, or for a repeated run one per task with c/K passed."""
    if "repeats" not in report:
        return _task_rows(rows, trajectories, css, prefix)
    return repeated_task_rows(rows, trajectories, css, prefix, lambda t: _task_view(t, _task_of(t)))


def _variant_rows(
    report: dict[str, Any], variant_trajectories: Sequence[Trajectory]
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Variant task rows by ``(spec, seed)``: from the report's ``variant_tasks`` when present,
    otherwise from the verdict each variant trajectory carries (scoring sets it)."""
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    if report.get("variant_tasks"):
        for row in report["variant_tasks"]:
            rows.setdefault((row["ood"], int(row.get("ood_seed", 0))), []).append(row)
        return rows
    for trajectory in variant_trajectories:
        verdict = trajectory.verdict or {}
        rows.setdefault((str(trajectory.meta.get("ood")), int(trajectory.meta.get("ood_seed", 0))), []).append(
            {
                "task_id": trajectory.task_id,
                "passed": bool(verdict.get("passed")),
                "failure": verdict.get("failure"),
                "failed_turn": verdict.get("failed_turn"),
                "repeat": repeat_of(trajectory),
            }
        )
    return rows


def _variants_html(report: dict[str, Any], variant_trajectories: Sequence[Trajectory]) -> str:
    esc = html.escape
    groups: dict[tuple[str, int], list[Trajectory]] = {}
    for trajectory in variant_trajectories:
        groups.setdefault((str(trajectory.meta.get("ood")), int(trajectory.meta.get("ood_seed", 0))), []).append(
            trajectory
        )
    sections = []
    for (spec, seed), rows in _variant_rows(report, variant_trajectories).items():
        passed = sum(bool(r["passed"]) for r in rows)
        body = "".join(_rows(report, rows, groups.get((spec, seed), []), "vtask", f"ood-{spec}-{seed}-"))
        sections.append(
            f'<details class="variant"><summary>OOD <code>{esc(spec)}</code>, seed {seed}: '
            f"{passed}/{len(rows)} passed</summary>{body}</details>"
        )
    if not sections:
        return ""
    return f"<h2>OOD variant episodes</h2><div id='variant-tasks'>{''.join(sections)}</div>"


#: the page's style sheet and script (the script also marks what rendered, for the browser test)
_STYLE = """body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 2px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
#headline { display: flex; flex-wrap: wrap; align-items: stretch; gap: 12px; margin: 0 0 1.5em; }
#headline .cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ccd; border-radius: 6px; padding: 8px 16px; min-width: 9em; background: #f7f9fc; }
.card .value { font-size: 30px; font-weight: 700; color: #1d3d63; }
.card.main .value { font-size: 56px; } .card.main { background: #e8eef7; }
.card.variant .value { font-size: 22px; color: #5a3d7a; }
.card .label { font-size: 14px; color: #444; }
figure { display: inline-block; margin: 0.5em; } .plots { display: flex; flex-wrap: wrap; }
details.task, details.vtask, details.variant { border: 1px solid #ccc; border-radius: 4px; margin: 4px 0; padding: 4px 8px; }
.badge { padding: 0 6px; border-radius: 3px; color: white; } .pass { background: #2e7d32; } .fail { background: #c62828; }
details.task.pass, details.task.fail, details.vtask.pass, details.vtask.fail { background: none; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 4px; max-height: 18em; overflow: auto; }
.turn { border-left: 3px solid #3b6ea5; padding-left: 8px; margin: 8px 0; }
.sides { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 2fr); gap: 12px; }
.expected { background: #eef6ee; padding: 4px 8px; } .expected ul { padding-left: 1.2em; }
table.diff td { font-size: 90%; }
"""
_SCRIPT = """// A link to report.html#task-<id> opens that task (and the group holding it).
function openTarget() {
  const target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  for (let node = target; node; node = node.parentElement) if (node.tagName === "DETAILS") node.open = true;
  if (target) target.scrollIntoView();
  return target;
}
// Marks what actually rendered (read by the report's browser test).
window.addEventListener("load", () => {
  const target = openTarget();
  const images = Array.from(document.images);
  const data = document.body.dataset;
  data.plotsRendered = images.filter(i => i.complete && i.naturalWidth > 0).length;
  data.tasks = document.querySelectorAll("details.task").length;
  data.variantTasks = document.querySelectorAll("details.vtask").length;
  const main = document.querySelector("#score-overall .value");
  data.headlineTop = Math.round(main.getBoundingClientRect().top + window.scrollY);
  data.headlinePx = parseFloat(getComputedStyle(main).fontSize);
  if (target) data.expectedVisible = Array.from(target.querySelectorAll(".expected li"))
    .filter(li => li.getBoundingClientRect().height > 0).length;
});
window.addEventListener("hashchange", openTarget);
"""


def _meta_table(report: dict[str, Any]) -> str:
    summary, esc = report["summary"], html.escape
    rows = [
        ("model", report.get("model", {}).get("name")),
        ("data", report.get("data_version")),
        ("call format", report.get("call_format")),
        ("seed", report.get("seed")),
        *repeats_meta_rows(report),
        ("command", report.get("command")),
        ("overall", pct(summary["overall"]) + overall_suffix(report)),
        ("overall (BFCL rule)", pct(summary["overall_bfcl"])),
        ("positional arguments dropped", positional_note(summary).split(": ", 1)[1]),
    ]
    return (
        "<table>"
        + "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>" for k, v in rows)
        + "</table>"
    )


def _plots(report: dict[str, Any]) -> dict[str, str]:
    """Plot id -> base64 PNG: the four summary plots, and the OOD comparison when there is one."""
    summary = report["summary"]
    plots = {
        "accuracy-by-category": _bars(
            {k: v["accuracy"] for k, v in summary["categories"].items()}, "Accuracy by category"
        ),
        "accuracy-by-api": _bars({k: v["accuracy"] for k, v in summary["by_api"].items()}, "Accuracy by API"),
        "failure-reasons": _bars(
            {k: float(v) for k, v in summary["failures"].items()}, "Outcomes (entries)", percent=False
        ),
        "structure-mix": _bars(summary["structure"], "Structural state of assistant messages"),
    }
    if "ood" in report:
        ood = report["ood"]
        plots["ood-comparison"] = _bars(
            {
                "in-distribution": ood["in_distribution"]["overall"],
                **{_plot_label(row["spec"]): row["overall"] for row in ood["variants"]},
            },
            "Overall accuracy: in distribution vs OOD",
        )
    return plots


def _plot_label(spec: str) -> str:
    """A bar's label: a BFCL V4 format configuration as its values only
    (``rename_tools+json/True/xml/plaintext/classic``), so 26 of them fit under a plot."""
    return "+".join(
        "/".join(pair.partition("=")[2] for pair in token.split(":", 1)[-1].split("&"))
        if FORMAT_KEY in token
        else token
        for token in spec.split("+")
    )


def _ood_table(report: dict[str, Any]) -> str:
    if "ood" not in report:
        return ""
    ood = report["ood"]
    rows = "".join(
        f"<tr><td><code>{html.escape(row['spec'])}</code></td><td>{pct(row['overall'])}</td>"
        f"<td>{points(-row['drop'])}</td><td>{row['lost']}</td><td>{row['gained']}</td></tr>"
        for row in ood["variants"]
    )
    return (
        "<h2>In distribution vs OOD variants</h2><table id='ood'><tr><th>variant</th><th>overall</th>"
        "<th>drop (points)</th><th>lost</th><th>gained</th></tr>"
        f"<tr><td>in-distribution</td><td>{pct(ood['in_distribution']['overall'])}</td><td></td><td></td><td></td></tr>"
        f"{rows}</table>" + "".join(_format_sensitivity_table(group) for group in ood.get("format_sensitivity", ()))
    )


def _format_sensitivity_table(group: dict[str, Any]) -> str:
    """BFCL V4's max-Δ and std across one group of format configurations, overall and per category."""
    overall, categories = group["overall"], group["categories"]
    base = f" on <code>{html.escape(group['spec'])}</code>" if group["spec"] else ""
    header = "".join(f"<th>{html.escape(c)}</th>" for c in categories)
    cells = {
        key: f"<td>{100 * overall[key]:.2f}</td>"
        + "".join(f"<td>{100 * categories[c][key]:.2f}</td>" for c in categories)
        for key in ("max_delta", "std")
    }
    return (
        f"<h2>Format sensitivity{base} ({len(group['formats'])} BFCL V4 format configurations)</h2>"
        f"<table class='format-sensitivity'><tr><th></th><th>overall</th>{header}</tr>"
        f"<tr><td>max-Δ (points)</td>{cells['max_delta']}</tr><tr><td>std (points)</td>{cells['std']}</tr></table>"
        f"<p>Best: <code>{html.escape(overall['best'])}</code> ({pct(overall['max'])}); worst: "
        f"<code>{html.escape(overall['worst'])}</code> ({pct(overall['min'])}).</p>"
    )


def html_page(
    report: dict[str, Any], trajectories: Sequence[Trajectory], variant_trajectories: Sequence[Trajectory] = ()
) -> str:
    """The HTML report: the headline scores first, then the run, the plots and every task."""
    name = html.escape(str(report.get("model", {}).get("name")))
    images = "".join(
        f'<figure><img id="{plot}" alt="{plot}" src="data:image/png;base64,{data}"></figure>'
        for plot, data in _plots(report).items()
    )
    rows = _rows(report, report["tasks"], trajectories, "task", "task-")
    count = len(report["tasks"]) if "repeats" not in report else task_count(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>toolenv report — {name}</title>
<style>
{_STYLE}</style></head><body>
<h1>toolenv evaluation — {name}</h1>
{_headline(report)}
{_meta_table(report)}
{repeats_html(report)}{_ood_table(report)}<h2>Plots</h2><div class="plots">{images}</div>
<h2>Tasks ({count})</h2>
<div id="tasks">{"".join(rows)}</div>
{_variants_html(report, variant_trajectories)}
<script>
{_SCRIPT}</script>
</body></html>
"""


def _expected_html(task: Task | None, turn: int) -> str:
    """The ground-truth calls of one turn (the variant's own names for an OOD variant)."""
    esc = html.escape
    if task is None:
        return "<div class='expected'><b>expected:</b> <i>task unknown</i></div>"
    if turn >= len(task.ground_truth):
        return "<div class='expected'><b>expected:</b> <i>no such turn in the task</i></div>"
    calls = task.ground_truth[turn]
    items = "".join(f"<li><code>{esc(call[:500])}</code></li>" for call in calls)
    return (
        f"<div class='expected'><b>expected calls</b>"
        f"{f'<ul>{items}</ul>' if calls else '<p><i>none (this turn is not checked)</i></p>'}</div>"
    )


def _turn_verdicts(trajectory: Trajectory) -> dict[int, dict[str, Any]]:
    """Per-turn verdicts by turn index: those of the fresh re-check (``trajectory.verdict``,
    set when scoring) first, else those the environment recorded while playing (a re-imported
    trajectory has only the former)."""
    verdicts = {turn.index: turn.verdict for turn in trajectory.turns if turn.verdict}
    for turn_verdict in (trajectory.verdict or {}).get("turns", []):
        verdicts[int(turn_verdict["turn"])] = turn_verdict
    return verdicts


def _task_view(trajectory: Trajectory, task: Task | None = None) -> str:
    """Every turn of one episode: the user's messages; the expected calls beside the model's
    steps (raw output, structural state, calls and results); the turn's verdict with the state
    difference or missing results. Turns the ground truth has but the model never reached are
    shown too, with their expected calls."""
    esc = html.escape
    verdicts = _turn_verdicts(trajectory)
    turns = {turn.index: turn for turn in trajectory.turns}
    indices = sorted(set(turns) | set(range(len(task.ground_truth) if task else 0)))
    parts = []
    for index in indices:
        turn = turns.get(index)
        user = "<br>".join(esc(str(m.get("content", ""))[:2000]) for m in turn.user) if turn else ""
        steps = []
        for step in turn.steps if turn else []:
            raw = step.raw if isinstance(step.raw, str) else json.dumps(step.raw)
            calls = "".join(
                f"<li><code>{esc(call.to_python()[:500])}</code>"
                f"{'' if result is None else f' → <code>{esc(result[:500])}</code>'}</li>"
                # a re-imported step has calls but no results (nothing ran them)
                for call, result in zip_longest(step.calls, step.results[: len(step.calls)])
            )
            errors = "".join(f"<li class='error'>{esc(e[:300])}</li>" for e in step.errors)
            steps.append(
                f"<div class='step'><i>{esc(step.structure)}</i><pre>{esc(raw[:3000])}</pre><ul>{calls}{errors}</ul></div>"
            )
        model = "".join(steps) if turn else "<p><i>the model never reached this turn</i></p>"
        verdict = verdicts.get(index) or {}
        diff = "".join(
            f"<tr><td>{esc(d['class'])}.{esc(d['attribute'])}</td><td><code>{esc(d['expected'])}</code></td><td><code>{esc(d['got'])}</code></td></tr>"
            for d in verdict.get("state_diff", [])
        )
        missing = "".join(f"<li><code>{esc(m[:300])}</code></li>" for m in verdict.get("missing_results", []))
        verdict_html = ""
        if verdict:
            verdict_html = (
                f"<p>verdict: <b>{'pass' if verdict.get('passed') else esc(str(verdict.get('failure')))}</b>"
                f"{'' if verdict.get('checked', True) else ' (not checked: empty ground truth)'}</p>"
            )
            if diff:
                verdict_html += (
                    "<p>state difference:</p><table class='diff'><tr><th>attribute</th><th>expected</th>"
                    f"<th>got</th></tr>{diff}</table>"
                )
            if missing:
                verdict_html += f"<p>missing results:</p><ul>{missing}</ul>"
        parts.append(
            f"<div class='turn'><h4>turn {index}</h4><p><b>user:</b> {user}</p>"
            f"<div class='sides'>{_expected_html(task, index)}<div class='model'><b>model</b>{model}</div></div>"
            f"{verdict_html}</div>"
        )
    return "".join(parts)
