"""The HTML report opens in headless Chromium: its plots load and its task view is there."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evaluators.runner import RunConfig, run_eval, run_meta, score_and_report
from tests.fakes import OracleModel


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it with apt)")
    run = tmp_path / "run"
    trajectories = run_eval(OracleModel(fail_every=2), RunConfig(model="oracle", categories=("base",), limit=6), run, progress=False)
    page = score_and_report(run, trajectories, run_meta(run))["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r'data-plots-rendered="4"', dom), dom[:500]
    assert re.search(r'data-tasks="6"', dom)
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50  # text, bars and badges, not a blank page
    blue = sum(count for count, (r, g, b) in colors if b > 140 and r < 90 and 90 < g < 130)
    assert blue > 2000  # the plots' bars (#3b6ea5) are on screen
