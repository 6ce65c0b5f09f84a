"""The evaluation pipeline: runner, resume after a kill, scoring, reports, interop, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluators.interop import read_bfcl_results, write_bfcl_results
from evaluators.runner import RunConfig, run_eval, run_meta, score_and_report
from evaluators.scoring import score_trajectory, summarize
from tests.fakes import ExpertModel, FakeOpenAIServer
from toolenv.data import get_task
from toolenv.executor import keyword_call
from toolenv.trajectory import read_jsonl

TOOLENV = [sys.executable, "-m", "toolenv.cli"]


def test_runner_scores_the_oracle_and_a_failing_model(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=12, batch_size=4)
    trajectories = run_eval(ExpertModel(fail_every=3), config, tmp_path / "run", progress=False)
    assert len(trajectories) == 12 and len({t.task_id for t in trajectories}) == 12
    scores = [score_trajectory(t) for t in trajectories]
    failing = {t.task_id for t in trajectories if get_task(t.task_id).index % 3 == 0}
    assert {s.task_id for s in scores if not s.verdict.passed} == failing
    assert all(s.verdict.failure == "empty_turn" for s in scores if not s.verdict.passed)
    summary = summarize(scores, trajectories)
    assert summary.categories["base"]["correct"] == 12 - len(failing)
    assert summary.overall_bfcl == pytest.approx(summary.overall / 4)
    assert abs(sum(summary.structure.values()) - 1) < 1e-9
    paths = score_and_report(tmp_path / "run", trajectories, run_meta(tmp_path / "run"))
    report = json.loads(paths["json"].read_text())
    assert report["data_version"].startswith("bfcl-eval==2026.3.23") and report["model"]["name"] == "oracle"
    assert "| base |" in paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert page.count("<img") == 4 and page.count('<details class="task') == 12


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    """Kill the runner mid-run (SIGKILL), start it again: the trajectories and the report equal
    those of an uninterrupted run, with nothing lost or doubled."""
    with FakeOpenAIServer(ExpertModel(fail_every=4)) as server:
        base = [
            *TOOLENV,
            "eval",
            "--endpoint",
            server.url,
            "--model",
            "oracle",
            "--categories",
            "base",
            "--limit",
            "16",
            "--batch-size",
            "2",
            "--quiet",
        ]
        subprocess.run([*base, "--out", str(tmp_path / "straight")], check=True, capture_output=True)
        killed = tmp_path / "killed"
        process = subprocess.Popen([*base, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = killed / "trajectories.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not lines.exists() or lines.read_text().count("\n") < 5):
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        written_before = lines.read_text().count("\n")
        assert 5 <= written_before < 16
        subprocess.run([*base, "--out", str(killed)], check=True, capture_output=True)

    def outcome(folder: Path) -> tuple:
        trajectories = sorted(
            (t.to_dict() for t in read_jsonl(folder / "trajectories.jsonl")), key=lambda t: t["task_id"]
        )
        report = json.loads((folder / "report.json").read_text())
        return trajectories, report["summary"], report["tasks"]

    assert outcome(killed) == outcome(tmp_path / "straight")


def test_export_to_bfcl_format_and_score_back(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=10, batch_size=5)
    trajectories = run_eval(ExpertModel(fail_every=2), config, tmp_path / "run", progress=False)
    ours = {t.task_id: score_trajectory(t).verdict.passed for t in trajectories}
    files = write_bfcl_results(trajectories, tmp_path / "bfcl")
    assert [f.name for f in files] == ["BFCL_v4_multi_turn_base_result.json"]
    back = {t.task_id: score_trajectory(t).verdict.passed for t in read_bfcl_results([tmp_path / "bfcl"])}
    assert back == ours and not all(ours.values()) and any(ours.values())


def test_official_fc_and_error_records_are_scored(tmp_path: Path) -> None:
    task = get_task("multi_turn_base_0")
    # FC records carry keyword arguments only
    fc_steps = [
        [[{c.name: json.dumps(dict(keyword_call(c, task.involved_classes).kwargs))} for c in turn]] if turn else []
        for turn in task.ground_truth_calls
    ]
    records = [
        {"id": task.id, "result": fc_steps},
        {"id": "multi_turn_base_1", "result": "Error during inference: boom"},
    ]
    path = tmp_path / "BFCL_v4_multi_turn_base_result.json"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    verdicts = {t.task_id: score_trajectory(t).verdict for t in read_bfcl_results([path])}
    assert verdicts["multi_turn_base_0"].passed
    assert verdicts["multi_turn_base_1"].failure == "force_terminated"


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--categories", "nope", "--out", "{tmp}/x"], "unknown category 'nope'"),
        (["eval", "--model", "{tmp}/missing-model", "--out", "{tmp}/x"], "no transformers model at"),
        (
            ["eval", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--limit", "1", "--out", "{tmp}/x"],
            "cannot reach endpoint",
        ),
        (["eval", "--format", "yaml", "--out", "{tmp}/x"], "unknown call format 'yaml'"),
        (["score", "{tmp}/corrupt", "--bfcl-results"], "not valid JSON"),
        (["score", "{tmp}/nothing"], "holds no trajectories.jsonl"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "BFCL_v4_multi_turn_base_result.json").write_text(
        '{"id": "multi_turn_base_0", "result": [[\n'
    )
    done = subprocess.run(
        [*TOOLENV, *[a.replace("{tmp}", str(tmp_path)) for a in args]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
