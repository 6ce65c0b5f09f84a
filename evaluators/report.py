"""Reports of a scored run: JSON (machines), Markdown (terminals, READMEs) and one
self-contained HTML page (matplotlib plots embedded as PNG, a browsable per-task view).

Every report records the data version, the model, the call format, the seed and the command
line that produced it.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

from evaluators.scoring import Summary, TaskScore
from toolenv import __version__
from toolenv.trajectory import Trajectory


def report_dict(summary: Summary, scores: Sequence[TaskScore], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "toolenv_version": __version__,
        **meta,
        "summary": summary.to_dict(),
        "tasks": [score.to_dict() for score in scores],
    }


def _pct(value: float) -> str:
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
        "| category | accuracy | correct | total |",
        "|---|---|---|---|",
    ]
    for category, row in summary["categories"].items():
        lines.append(f"| {category} | {_pct(row['accuracy'])} | {row['correct']} | {row['total']} |")
    lines += [
        f"| **overall** (mean of the categories run) | **{_pct(summary['overall'])}** | | |",
        f"| overall, BFCL rule (missing categories count 0) | {_pct(summary['overall_bfcl'])} | | |",
        "",
        "| primary or secondary API | accuracy | total |",
        "|---|---|---|",
    ]
    lines += [f"| {api} | {_pct(row['accuracy'])} | {row['total']} |" for api, row in summary["by_api"].items()]
    lines += ["", "| turns | accuracy | total |", "|---|---|---|"]
    lines += [f"| {turns} | {_pct(row['accuracy'])} | {row['total']} |" for turns, row in summary["by_turns"].items()]
    lines += ["", "| outcome | entries |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in summary["failures"].items()]
    lines += ["", f"Structural states of {summary['assistant_messages']} assistant messages:", "",
              "| state | share |", "|---|---|"]
    lines += [f"| {state} | {_pct(share)} |" for state, share in summary["structure"].items()]
    if "ood" in report:
        lines += ["", *ood_markdown(report["ood"])]
    return "\n".join(lines) + "\n"


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value + 0.0:+.2f}"  # + 0.0: no "-0.00"


def ood_markdown(ood: dict[str, Any]) -> list[str]:
    """In-distribution and each OOD variant side by side, with the drop in points."""
    base = ood["in_distribution"]
    categories = list(base["categories"])
    seeds = ", ".join(map(str, ood.get("seeds", []))) or "-"
    lines = [f"## In distribution vs OOD variants (seed {seeds})", "",
             "| variant | tasks | overall | drop (points) | " + " | ".join(categories) + " | lost | gained |",
             "|---|---|---|---|" + "---|" * len(categories) + "---|---|",
             f"| in-distribution | {base['tasks']} | {_pct(base['overall'])} | | "
             + " | ".join(_pct(base["categories"][c]["accuracy"]) for c in categories) + " | | |"]
    for row in ood["variants"]:
        cells = []
        for category in categories:
            value = row["categories"].get(category)
            cells.append("" if value is None else f"{_pct(value['accuracy'])} ({_points(-value['drop'] if value['drop'] is not None else None)})")
        lines.append(f"| `{row['spec']}` | {row['tasks']} | {_pct(row['overall'])} | {_points(-row['drop'])} | "
                     + " | ".join(cells) + f" | {row['lost']} | {row['gained']} |")
    lines += ["", "Drop: variant minus in-distribution accuracy, in percentage points (negative: the variant is harder). "
              "lost/gained: tasks passed in distribution but failed as the variant, and the reverse."]
    return lines


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


def html_page(report: dict[str, Any], trajectories: Sequence[Trajectory]) -> str:
    summary = report["summary"]
    plots = {
        "accuracy-by-category": _bars({k: v["accuracy"] for k, v in summary["categories"].items()}, "Accuracy by category"),
        "accuracy-by-api": _bars({k: v["accuracy"] for k, v in summary["by_api"].items()}, "Accuracy by API"),
        "failure-reasons": _bars({k: float(v) for k, v in summary["failures"].items()}, "Outcomes (entries)", percent=False),
        "structure-mix": _bars(summary["structure"], "Structural state of assistant messages"),
    }
    esc = html.escape
    meta_rows = "".join(
        f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>"
        for k, v in [("model", report.get("model", {}).get("name")), ("data", report.get("data_version")),
                     ("call format", report.get("call_format")), ("seed", report.get("seed")),
                     ("command", report.get("command")), ("overall", _pct(summary["overall"])),
                     ("overall (BFCL rule)", _pct(summary["overall_bfcl"]))]
    )
    ood_html = ""
    if "ood" in report:
        ood = report["ood"]
        plots["ood-comparison"] = _bars({"in-distribution": ood["in_distribution"]["overall"],
                                         **{row["spec"]: row["overall"] for row in ood["variants"]}},
                                        "Overall accuracy: in distribution vs OOD")
        ood_rows = "".join(
            f"<tr><td><code>{html.escape(row['spec'])}</code></td><td>{_pct(row['overall'])}</td>"
            f"<td>{_points(-row['drop'])}</td><td>{row['lost']}</td><td>{row['gained']}</td></tr>"
            for row in ood["variants"]
        )
        ood_html = ("<h2>In distribution vs OOD variants</h2><table id='ood'><tr><th>variant</th><th>overall</th>"
                    "<th>drop (points)</th><th>lost</th><th>gained</th></tr>"
                    f"<tr><td>in-distribution</td><td>{_pct(ood['in_distribution']['overall'])}</td><td></td><td></td><td></td></tr>"
                    f"{ood_rows}</table>")
    images = "".join(f'<figure><img id="{name}" alt="{name}" src="data:image/png;base64,{data}"></figure>' for name, data in plots.items())
    by_id = {t.task_id: t for t in trajectories}
    rows = []
    for task in report["tasks"]:
        trajectory = by_id.get(task["task_id"])
        status = "pass" if task["passed"] else "fail"
        rows.append(
            f'<details class="task {status}" id="task-{esc(task["task_id"])}"><summary><b>{esc(task["task_id"])}</b> '
            f'<span class="badge {status}">{status}</span> {esc(task["failure"] or "")}'
            f'{"" if task["failed_turn"] in (None, -1) else " at turn " + str(task["failed_turn"])}</summary>'
            f"{_task_view(trajectory) if trajectory else '<p>no trajectory</p>'}</details>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>toolenv report — {esc(str(report.get('model', {}).get('name')))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 2px 8px; border-bottom: 1px solid #ddd; }}
figure {{ display: inline-block; margin: 0.5em; }} .plots {{ display: flex; flex-wrap: wrap; }}
details.task {{ border: 1px solid #ccc; border-radius: 4px; margin: 4px 0; padding: 4px 8px; }}
.badge {{ padding: 0 6px; border-radius: 3px; color: white; }} .pass {{ background: #2e7d32; }} .fail {{ background: #c62828; }}
details.task.pass, details.task.fail {{ background: none; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 4px; max-height: 18em; overflow: auto; }}
.turn {{ border-left: 3px solid #3b6ea5; padding-left: 8px; margin: 8px 0; }}
</style></head><body>
<h1>toolenv evaluation</h1>
<table>{meta_rows}</table>
{ood_html}<h2>Plots</h2><div class="plots">{images}</div>
<h2>Tasks ({len(report["tasks"])})</h2>
<div id="tasks">{''.join(rows)}</div>
<script>
// Marks what actually rendered (read by the report's browser test).
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  document.body.dataset.plotsRendered = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.tasks = document.querySelectorAll("details.task").length;
}});
</script>
</body></html>
"""


def _task_view(trajectory: Trajectory) -> str:
    esc = html.escape
    parts = []
    for turn in trajectory.turns:
        user = "<br>".join(esc(str(m.get("content", ""))[:2000]) for m in turn.user)
        steps = []
        for step in turn.steps:
            raw = step.raw if isinstance(step.raw, str) else json.dumps(step.raw)
            calls = "".join(
                f"<li><code>{esc(call.to_python()[:500])}</code> → <code>{esc(result[:500])}</code></li>"
                for call, result in zip(step.calls, step.results)
            )
            errors = "".join(f"<li class='error'>{esc(e[:300])}</li>" for e in step.errors)
            steps.append(f"<div><i>{esc(step.structure)}</i><pre>{esc(raw[:3000])}</pre><ul>{calls}{errors}</ul></div>")
        verdict = turn.verdict or {}
        diff = "".join(
            f"<tr><td>{esc(d['class'])}.{esc(d['attribute'])}</td><td><code>{esc(d['expected'])}</code></td><td><code>{esc(d['got'])}</code></td></tr>"
            for d in verdict.get("state_diff", [])
        )
        missing = "".join(f"<li><code>{esc(m[:300])}</code></li>" for m in verdict.get("missing_results", []))
        verdict_html = ""
        if verdict:
            verdict_html = (f"<p>verdict: <b>{'pass' if verdict.get('passed') else esc(str(verdict.get('failure')))}</b>"
                            f"{'' if verdict.get('checked', True) else ' (not checked: empty ground truth)'}</p>")
            if diff:
                verdict_html += f"<table class='diff'><tr><th>attribute</th><th>expected</th><th>got</th></tr>{diff}</table>"
            if missing:
                verdict_html += f"<p>missing results:</p><ul>{missing}</ul>"
        parts.append(f"<div class='turn'><h4>turn {turn.index}</h4><p><b>user:</b> {user}</p>{''.join(steps)}{verdict_html}</div>")
    return "".join(parts)


def write_reports(out_dir: Path, report: dict[str, Any], trajectories: Sequence[Trajectory]) -> dict[str, Path]:
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths["markdown"].write_text(markdown(report))
    paths["html"].write_text(html_page(report, trajectories))
    return paths
