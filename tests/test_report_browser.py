"""The HTML report opens in headless Chromium: the headline score leads, large; its plots load;
a failing task opened by its link shows the expected calls beside the model's."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evaluators.runner import RunConfig, episode_tasks, run_eval, run_meta, score_and_report
from tests.fakes import ExpertModel
from toolenv.data import get_task

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--hide-scrollbars"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dom(browser: str, url: str) -> str:
    return subprocess.run([browser, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def _screenshot(browser: str, url: str, path: Path, height: int) -> list[tuple[int, tuple[int, int, int]]]:
    subprocess.run(
        [browser, *FLAGS, f"--window-size=1280,{height}", f"--screenshot={path}", url], capture_output=True, timeout=120
    )
    from PIL import Image

    image = Image.open(path).convert("RGB")
    assert image.size == (1280, height)
    return image.getcolors(maxcolors=1 << 20) or []


def _pixels(colors: list[tuple[int, tuple[int, int, int]]], rgb: tuple[int, int, int], tolerance: int = 6) -> int:
    return sum(count for count, color in colors if all(abs(a - b) <= tolerance for a, b in zip(color, rgb)))


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it with apt)")
    run = tmp_path / "run"
    trajectories = run_eval(
        ExpertModel(fail_every=2), RunConfig(model="oracle", categories=("base",), limit=6), run, progress=False
    )
    paths = score_and_report(run, trajectories, run_meta(run))
    report = json.loads(paths["json"].read_text())
    page = paths["html"].as_uri()

    dom = _dom(browser, page)
    assert re.search(r'data-plots-rendered="4"', dom), dom[:500]
    assert re.search(r'data-tasks="6"', dom)
    overall = f"{100 * report['summary']['overall']:.2f}%"
    assert f'id="score-overall"><div class="value">{overall}</div>' in dom
    top = int(re.search(r'data-headline-top="(\d+)"', dom).group(1))
    size = float(re.search(r'data-headline-px="([\d.]+)"', dom).group(1))
    assert top < 200 and size >= 40  # first thing on the page, and large

    colors = _screenshot(browser, page, tmp_path / "report.png", 1600)
    assert len(colors) > 50  # text, bars and badges, not a blank page
    blue = sum(count for count, (r, g, b) in colors if b > 140 and r < 90 and 90 < g < 130)
    assert blue > 2000  # the plots' bars (#3b6ea5) are on screen
    assert _pixels(colors, (0x1D, 0x3D, 0x63)) > 1500  # the headline digits (#1d3d63, 56px) are drawn

    failing = next(row for row in report["tasks"] if not row["passed"])
    linked = f"{page}#task-{failing['task_id']}"
    dom = _dom(browser, linked)
    expected = get_task(failing["task_id"]).ground_truth[0]
    assert int(re.search(r'data-expected-visible="(\d+)"', dom).group(1)) >= len(expected)
    opened = dom[dom.index(f'id="task-{failing["task_id"]}"') :]
    box = opened[opened.index("expected calls") : opened.index('class="model"')]
    assert all(html.escape(call, quote=False) in box for call in expected), box[:500]
    colors = _screenshot(browser, linked, tmp_path / "task.png", 2400)
    assert _pixels(colors, (0xEE, 0xF6, 0xEE), 2) > 20000  # the expected-calls boxes (#eef6ee) are drawn


def test_a_repeated_run_shows_its_repeats_table_in_headless_chromium(tmp_path: Path) -> None:
    """`--repeats 3`: the repeats table (mean, ± std, pass^1..pass^3) is drawn with the
    positional-argument and per-turn-credit columns, each task shows c/3 with its three repeats
    inside, and a link to one repeat opens it."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it with apt)")
    from tests.test_repeats import SeededOracle

    config = RunConfig(model="seeded", categories=("base", "miss_func"), limit=4, seed=3, repeats=3)
    run = tmp_path / "run"
    trajectories = run_eval(SeededOracle(episode_tasks(config)), config, run, progress=False)
    paths = score_and_report(run, trajectories, run_meta(run))
    report = json.loads(paths["json"].read_text())
    dom = _dom(browser, paths["html"].as_uri())
    assert re.search(r'data-repeats-rows="3"', dom), dom[:500]  # two categories and overall
    columns = re.search(r'data-repeats-columns="([^"]*)"', dom).group(1).split()
    assert columns == [
        "category",
        "tasks",
        "mean",
        "std",
        "pass-hat-1",
        "pass-hat-2",
        "pass-hat-3",
        "turn-credit",
        "positional",
    ]
    assert re.search(r'data-tasks="4"', dom) and re.search(r'data-repeated-tasks="12"', dom)
    table = dom[dom.index('<table id="repeats">') :]
    table = table[: table.index("</table>")]
    base = report["repeats"]["categories"]["base"]
    assert f"<td>{100 * base['mean']:.2f}%</td><td>± {100 * base['std']:.2f}</td>" in table
    assert f"<td>{100 * base['pass^k']['3']:.2f}%</td><td>{100 * base['turn_credit']:.2f}%</td>" in table
    assert "mean of 3 runs ±" in dom and "positional arguments dropped" in dom
    row = report["repeats"]["tasks"][0]
    assert f"{row['passes']}/3 passed" in dom
    colors = _screenshot(browser, paths["html"].as_uri(), tmp_path / "repeats.png", 1400)
    assert _pixels(colors, (0x1D, 0x3D, 0x63)) > 1500  # the headline is drawn
    linked = _dom(browser, f"{paths['html'].as_uri()}#task-{row['task_id']}-r2")
    assert re.search(rf'<details class="task \w+" id="task-{row["task_id"]}" open="">', linked)
    assert re.search(rf'<details class="repeat \w+" id="task-{row["task_id"]}-r2" open="">', linked)
    assert int(re.search(r'data-expected-visible="(\d+)"', linked).group(1)) >= 1  # its expected calls shown
