"""The oracle switch: with ``TOOLENV_REQUIRE_ORACLE`` set (CI sets it), an oracle-backed test
whose official package is missing fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
from tests.oracle import require_official_module

def test_needs_a_missing_official_module():
    require_official_module("bfcl_eval.no_such_module_for_the_switch_test")
"""


def run_probe(tmp_path: Path, required: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "TOOLENV_REQUIRE_ORACLE": required, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_a_missing_oracle_skips_by_default(tmp_path: Path) -> None:
    done = run_probe(tmp_path, "")
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout


def test_a_missing_oracle_fails_when_required(tmp_path: Path) -> None:
    done = run_probe(tmp_path, "1")
    assert done.returncode == 1 and "1 failed" in done.stdout and "TOOLENV_REQUIRE_ORACLE" in done.stdout, done.stdout
