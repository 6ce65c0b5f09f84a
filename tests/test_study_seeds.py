"""The table over seeds (trainers/study/seeds.py): statistics against the standard library, a
seed that lacks a label counted as missing (n), and the CLI's one-line refusal."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.study.config import load_study
from trainers.study.seeds import aggregate, mean_std, seed_reports, write_seed_summary


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=6))
def test_mean_std_matches_the_standard_library(values: list[float]) -> None:
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values), abs=1e-9)
    if len(values) == 1:
        assert std is None
    else:
        assert std == pytest.approx(statistics.stdev(values), abs=1e-7)


def _study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(
        "[study]\n"
        'name = "s"\n'
        f'out_dir = "{tmp_path / "runs"}"\n'
        f'report_dir = "{tmp_path / "report"}"\n'
        'methods = ["base", "vanilla"]\n'
        "[study.eval]\n"
        'categories = ["base"]\n'
        "[model]\n"
        'path = "smollm2"\n'
    )
    return path


def _seed_report(report_dir: Path, seed: int, rows: list[dict[str, object]], data_version: str | None = None) -> None:
    folder = report_dir / f"seed-{seed}"
    folder.mkdir(parents=True)
    record: dict[str, object] = {"rows": rows}
    if data_version is not None:
        record["data_version"] = data_version
    (folder / "results.json").write_text(json.dumps(record))


def test_seed_table_means_and_missing_seeds(tmp_path: Path) -> None:
    study = load_study(_study_file(tmp_path))
    _seed_report(study.report_dir, 1, [{"label": "base", "id": 10.0}, {"label": "vanilla", "id": 20.0}])
    _seed_report(study.report_dir, 2, [{"label": "base", "id": 30.0}, {"label": "vanilla", "id": None}])
    _seed_report(study.report_dir, 3, [{"label": "base", "id": 20.0}])
    rows = {row["label"]: row for row in aggregate(seed_reports(study.report_dir), study.labels, ["id"])}
    assert rows["base"]["id"]["mean"] == pytest.approx(20.0)
    assert rows["base"]["id"]["std"] == pytest.approx(10.0)
    assert rows["base"]["id"]["seeds"] == [1, 2, 3]
    assert rows["vanilla"]["id"] == {"mean": 20.0, "std": None, "n": 1, "seeds": [1]}
    text = write_seed_summary(study).read_text()
    assert "| base | — | 20.00 ± 10.00 | — | — | — |" in text  # category base, ID, two OOD, non-flat
    assert "20.00 (n=1)" in text  # vanilla: one seed of three, said so
    assert "3 seed(s) (1, 2, 3)" in text


def test_seed_table_names_each_seeds_data_release(tmp_path: Path) -> None:
    """Seeds made on different releases, or before reports recorded one, are named apart (the
    source in brackets, installed or wheel, does not split a release)."""
    study = load_study(_study_file(tmp_path))
    _seed_report(study.report_dir, 1, [{"label": "base", "id": 1.0}], "bfcl-eval==2026.3.23 (installed)")
    _seed_report(study.report_dir, 2, [{"label": "base", "id": 2.0}], "bfcl-eval==2026.3.23 (wheel, sha256 3bb6)")
    _seed_report(study.report_dir, 3, [{"label": "base", "id": 3.0}], "bfcl-eval==2025.10.2 (installed)")
    _seed_report(study.report_dir, 4, [{"label": "base", "id": 4.0}])
    text = write_seed_summary(study).read_text()
    assert "Data: `bfcl-eval==2026.3.23` (seeds 1, 2); `bfcl-eval==2025.10.2` (seed 3); not recorded (seed 4)." in text
    saved = json.loads((study.report_dir / "results-seeds.json").read_text())["data_versions"]
    assert saved == {
        "1": "bfcl-eval==2026.3.23 (installed)",
        "2": "bfcl-eval==2026.3.23 (wheel, sha256 3bb6)",
        "3": "bfcl-eval==2025.10.2 (installed)",
        "4": None,
    }


def test_across_seeds_without_reports_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolenv.cli import main

    assert main(["study", str(_study_file(tmp_path)), "--across-seeds"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no seed reports" in err and "\n" not in err
