"""Reports of a scored run: JSON (machines), Markdown (:mod:`evaluators.report_markdown`) and
one self-contained HTML page (:mod:`evaluators.report_html`).

Every report records the data version, the model, the call format, the seed and the command
line that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from evaluators.report_html import html_page
from evaluators.report_markdown import markdown
from evaluators.scoring import Summary, TaskScore
from toolenv import __version__
from toolenv.trajectory import Trajectory

__all__ = ["html_page", "markdown", "report_dict", "write_reports"]


def report_dict(
    summary: Summary, scores: Sequence[TaskScore], meta: dict[str, Any], variant_scores: Sequence[TaskScore] = ()
) -> dict[str, Any]:
    """The JSON report. ``tasks`` holds the in-distribution rows (as it always did); OOD variant
    rows, each with its ``ood`` spec and ``ood_seed``, go to ``variant_tasks`` when given."""
    report = {
        "toolenv_version": __version__,
        **meta,
        "summary": summary.to_dict(),
        "tasks": [score.to_dict() for score in scores],
    }
    if variant_scores:
        report["variant_tasks"] = [score.to_dict() for score in variant_scores]
    return report


def write_reports(
    out_dir: Path,
    report: dict[str, Any],
    trajectories: Sequence[Trajectory],
    variant_trajectories: Sequence[Trajectory] = (),
) -> dict[str, Path]:
    """Write report.json, report.md and report.html; ``variant_trajectories`` (OOD episodes)
    are browsable in the HTML page beside the in-distribution ones."""
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths["markdown"].write_text(markdown(report))
    paths["html"].write_text(html_page(report, trajectories, variant_trajectories))
    return paths
