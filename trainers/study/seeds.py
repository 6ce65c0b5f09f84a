"""One table over seeds: each ``toolenv study FILE --seed N`` writes its own report in
``report_dir/seed-N``; this reads them back and writes ``report_dir/results-seeds.md`` (and
``.json``) with the mean ± sample standard deviation of every score column per label, and how
many seeds each cell has. A label that a seed has not finished is left out of that seed's
numbers and the cell says so through ``n``: a mean over fewer seeds is never passed off as one
over all of them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from envs._official import BFCL_DISTRIBUTION, release_of
from trainers.study.config import Study
from trainers.study.report import column_names, score_columns

_SEED_FOLDER = re.compile(r"^seed-(\d+)$")


def seed_reports(report_dir: Path) -> dict[int, dict[str, Any]]:
    """Seed → its ``results.json`` (parsed), for every ``seed-N`` folder that has one."""
    found: dict[int, dict[str, Any]] = {}
    for folder in sorted(report_dir.glob("seed-*")):
        match = _SEED_FOLDER.match(folder.name)
        path = folder / "results.json"
        if match and path.is_file():
            try:
                found[int(match.group(1))] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                raise ValueError(f"{path} is not a study report (not JSON); move it away and re-run") from None
    return found


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for no values; std None for one value)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate(
    reports: dict[int, dict[str, Any]], labels: Sequence[str], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per label: for each column ``{"mean", "std", "n", "seeds"}`` over the seeds whose
    row has a number there."""
    rows: list[dict[str, Any]] = []
    for label in labels:
        row: dict[str, Any] = {"label": label}
        for column in columns:
            pairs = []
            for seed, report in sorted(reports.items()):
                match = next((r for r in report.get("rows", []) if r.get("label") == label), None)
                if match is not None and isinstance(match.get(column), (int, float)):
                    pairs.append((seed, float(match[column])))
            mean, std = mean_std([value for _, value in pairs])
            row[column] = {"mean": mean, "std": std, "n": len(pairs), "seeds": [seed for seed, _ in pairs]}
        rows.append(row)
    return rows


def data_versions(reports: dict[int, dict[str, Any]]) -> str:
    """The bfcl-eval release(s) the seed reports were made on, e.g. ``bfcl-eval==2026.3.23 (seeds
    1, 2)``; a report written before reports recorded it counts as "not recorded", so a table over
    two releases, or over unknown ones, says so instead of passing for one."""
    by_release: dict[str, list[int]] = {}
    for seed, report in sorted(reports.items()):
        recorded = report.get("data_version")
        release = f"`{BFCL_DISTRIBUTION}=={release_of(recorded)}`" if isinstance(recorded, str) else "not recorded"
        by_release.setdefault(release, []).append(seed)
    return "; ".join(
        f"{release} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})" for release, s in by_release.items()
    )


def _cell(stats: dict[str, Any], total: int) -> str:
    if stats["mean"] is None:
        return "—"
    text = f"{stats['mean']:.2f}" + ("" if stats["std"] is None else f" ± {stats['std']:.2f}")
    return text if stats["n"] == total else f"{text} (n={stats['n']})"


def write_seed_summary(study: Study) -> Path:
    """Write ``report_dir/results-seeds.md`` and ``.json`` from the ``seed-N`` reports; returns
    the Markdown file. One-line ``ValueError`` when there is no seed report."""
    reports = seed_reports(study.report_dir)
    if not reports:
        raise ValueError(
            f"no seed reports in {study.report_dir} (seed-N/results.json); run `toolenv study "
            f"{study.source} --seed N` first"
        )
    columns = score_columns(study)
    rows = aggregate(reports, study.labels, columns)
    names = column_names(study)
    seeds = sorted(reports)
    lines = [
        f"# Study {study.name}: {len(seeds)} seed(s) ({', '.join(map(str, seeds))})",
        "",
        "Mean ± sample standard deviation over seeds of each seed's `results.md` (accuracy %, and the "
        "share of GRPO groups whose rewards were not all equal, averaged over RL steps). "
        "`(n=K)`: only K seeds have that number. Source: " + f"`{study.source}`.",
        "",
    ]
    lines += [f"Data: {data_versions(reports)}.", ""]
    if study.curriculum is not None:
        lines += [f"**Curriculum tasks, not the full benchmark** ({study.curriculum.describe()}).", ""]
    lines += [
        "| method | " + " | ".join(names.get(c, c) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        lines.append(f"| {row['label']} | " + " | ".join(_cell(row[c], len(seeds)) for c in columns) + " |")
    out = study.report_dir / "results-seeds.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (study.report_dir / "results-seeds.json").write_text(
        json.dumps(
            {
                "study": study.name,
                "source": study.source,
                "seeds": seeds,
                "data_versions": {str(seed): reports[seed].get("data_version") for seed in seeds},
                "rows": rows,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return out
