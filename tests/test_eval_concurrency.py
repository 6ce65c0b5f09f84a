"""Evaluation at server scale (issue #18): concurrent episodes against endpoints give exactly the
trajectories and reports of a serial run, resume exactly after a kill or a server that goes
down, retry 429/5xx with the retries counted, balance replicas by load and never have more than
``--concurrency`` requests in flight; the progress bar; TensorBoard metrics for training.

Latency on the fake servers only makes requests overlap (so that in-flight counts mean
something); no test measures time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evaluators.runner import RunConfig, episode_tasks, run_eval, run_meta, score_and_report
from tests.fakes import ChatServer, ExpertModel, FakeOpenAIServer, ModelServer
from tests.test_repeats import SeededOracle
from toolenv.inference import GenerationConfig, ModelError
from toolenv.inference.endpoint import OpenAIEndpointModel
from toolenv.trajectory import read_jsonl

TOOLENV = [sys.executable, "-m", "toolenv.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def toolenv(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOOLENV, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def endpoint(urls: Any, name: str = "oracle", **options: Any) -> OpenAIEndpointModel:
    return OpenAIEndpointModel(urls, name, GenerationConfig(), backoff=0.01, **options)


def report_of(out: Path, trajectories: list) -> dict[str, Any]:
    """The scored report without what legitimately differs between runs (the request counters)."""
    report = json.loads(score_and_report(out, trajectories, run_meta(out))["json"].read_text())
    report.pop("endpoint", None)
    return report


def base_args(url: str, out: Path, *more: str) -> list[str]:
    return ["eval", "--endpoint", url, "--model", "oracle", "--categories", "base", "--out", str(out), *more]


# -- identical results -------------------------------------------------------------------------


def test_concurrent_serial_and_lockstep_runs_give_identical_trajectories_and_reports(tmp_path: Path) -> None:
    """The same seeded oracle (its replies depend on the task and the sampling seed), with
    repeats and an OOD variant in another call format: in-process in lockstep batches, and behind
    an endpoint at concurrency 1 and 8; trajectories (in the order returned) and reports agree."""
    config = RunConfig(
        model="seeded", categories=("base", "miss_func"), limit=6, batch_size=4, seed=3, repeats=2,
        ood=("perturb_values+python_list_format",), ood_seed=2,
    )  # fmt: skip
    oracle = SeededOracle(episode_tasks(config))
    lockstep = run_eval(oracle, config, tmp_path / "lockstep", progress=False)
    results = {"lockstep": ([t.to_dict() for t in lockstep], report_of(tmp_path / "lockstep", lockstep))}
    with ModelServer(oracle, latency=0.01) as server:
        for concurrency in (1, 8):
            out = tmp_path / f"concurrency{concurrency}"
            model = endpoint(server.url, "seeded")
            trajectories = run_eval(model, config, out, progress=False, concurrency=concurrency)
            assert model.stats()["max_in_flight"] <= concurrency
            results[out.name] = ([t.to_dict() for t in trajectories], report_of(out, trajectories))
            lines = sorted((out / "trajectories.jsonl").read_text().splitlines())
            assert lines == sorted((tmp_path / "lockstep" / "trajectories.jsonl").read_text().splitlines())
    assert len(results["lockstep"][0]) == 6 * 2 * 2
    assert len({t["reward"] for t in results["lockstep"][0]}) == 2  # passes and failures both occur
    assert results["concurrency1"] == results["lockstep"] and results["concurrency8"] == results["lockstep"]


def test_a_killed_concurrent_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    with FakeOpenAIServer(ExpertModel(fail_every=3), latency=0.02) as server:
        args = base_args(server.url, tmp_path / "straight", "--limit", "16", "--concurrency", "4", "--quiet")
        assert toolenv(*args).returncode == 0
        killed = tmp_path / "killed"
        process = subprocess.Popen(
            [*TOOLENV, *base_args(server.url, killed, "--limit", "16", "--concurrency", "4", "--quiet")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        lines = killed / "trajectories.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not lines.exists() or lines.read_text().count("\n") < 4):
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 4 <= lines.read_text().count("\n") < 16
        done = toolenv(*base_args(server.url, killed, "--limit", "16", "--concurrency", "4", "--quiet"))
        assert done.returncode == 0, done.stderr
    assert len(lines.read_text().splitlines()) == 16  # nothing lost, nothing doubled

    def outcome(folder: Path) -> tuple:
        trajectories = sorted((t.to_dict() for t in read_jsonl(folder / "trajectories.jsonl")), key=str)
        report = json.loads((folder / "report.json").read_text())
        return trajectories, report["summary"], report["tasks"]

    assert outcome(killed) == outcome(tmp_path / "straight")


# -- retries and failures ------------------------------------------------------------------------


def test_429_and_503_are_retried_and_counted_in_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeOpenAIServer(ExpertModel(), faults=[429, 503]) as server:
        done = toolenv(*base_args(server.url, out, "--limit", "2", "--quiet"))
        statuses = list(server.statuses)
    assert done.returncode == 0, done.stderr
    assert statuses[:2] == [429, 503] and set(statuses[2:]) == {200}
    counters = json.loads((out / "report.json").read_text())["endpoint"]
    assert counters["retries"] == 2 and counters["failures"] == 0
    assert counters["requests"] == len(statuses) - 2 and counters["endpoints"][0]["url"] == server.url
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "faults, retries, attempts, message",
    [
        ([503, 503, 503], "2", 3, "answered HTTP 503 (3 attempts)"),
        ([401], "4", 1, "answered HTTP 401: "),  # a 4xx other than 429 is not retried
        ([429], "0", 1, "answered HTTP 429: "),
    ],
)
def test_a_permanent_failure_is_one_line_naming_the_endpoint(
    tmp_path: Path, faults: list[int], retries: str, attempts: int, message: str
) -> None:
    out = tmp_path / "run"
    with FakeOpenAIServer(ExpertModel(), faults=faults) as server:
        done = toolenv(*base_args(server.url, out, "--limit", "1", "--retries", retries, "--quiet"))
        assert server.statuses == faults[:attempts]
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and f"endpoint {server.url} {message}" in done.stderr, done.stderr
    assert "0 of 1 episodes are saved" in done.stderr
    assert json.loads((out / "endpoint.json").read_text())["failures"] == 1


def test_a_server_that_goes_down_ends_the_run_in_one_line_and_a_rerun_completes(tmp_path: Path) -> None:
    """The server stops mid-run: the run ends with one line naming it (connection refused),
    every finished episode is in the run file, and the same command against a server that is
    up again resumes to the result of an uninterrupted run."""
    out = tmp_path / "run"
    with FakeOpenAIServer(ExpertModel(fail_every=4), latency=0.02) as server:
        args = base_args(server.url, out, "--limit", "12", "--concurrency", "2", "--quiet")
        process = subprocess.Popen(
            [*TOOLENV, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
        lines = out / "trajectories.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not lines.exists() or lines.read_text().count("\n") < 3):
            time.sleep(0.005)
        server.stop()
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and "Traceback" not in stderr
    assert stderr.count("\n") == 1 and f"cannot reach endpoint {server.url} (connection refused" in stderr, stderr
    kept = lines.read_text()
    assert kept.endswith("\n") and 3 <= kept.count("\n") < 12 and f"{kept.count(chr(10))} of 12 episodes" in stderr
    with FakeOpenAIServer(ExpertModel(fail_every=4)) as again:
        resumed = toolenv(*base_args(again.url, out, "--limit", "12", "--concurrency", "2", "--quiet"))
        assert resumed.returncode == 0, resumed.stderr
        started = {json.dumps(request["messages"][:2]) for request in again.requests}
        assert 1 <= len(started) <= 12 - kept.count("\n")  # it played only what was left
        straight = toolenv(*base_args(again.url, tmp_path / "straight", "--limit", "12", "--quiet"))
        assert straight.returncode == 0
    assert lines.read_text().startswith(kept)  # what was finished stays as it was
    ours = sorted((t.to_dict() for t in read_jsonl(lines)), key=str)
    assert ours == sorted((t.to_dict() for t in read_jsonl(tmp_path / "straight" / "trajectories.jsonl")), key=str)
    counters = json.loads((out / "report.json").read_text())["endpoint"]
    assert counters["sessions"] == 2 and counters["failures"] >= 1


def test_a_refused_endpoint_is_not_retried() -> None:
    model = endpoint("http://127.0.0.1:9/v1", retries=3)
    with pytest.raises(ModelError, match=r"cannot reach endpoint http://127.0.0.1:9/v1 \(connection refused"):
        model.generate([[{"role": "user", "content": "hi"}]])
    assert model.stats()["retries"] == 0 and model.stats()["failures"] == 1


def test_a_timeout_is_retried_then_named() -> None:
    with ChatServer(lambda body: "late", latency=1.0) as server:
        model = OpenAIEndpointModel(server.url, "m", GenerationConfig(), timeout=0.2, retries=1, backoff=0.01)
        with pytest.raises(ModelError, match=r"did not answer within 0.2 s \(2 attempts\) \(raise --timeout\)"):
            model.generate([[{"role": "user", "content": "hi"}]])
    assert model.stats()["retries"] == 1


# -- replicas and the bound on requests in flight -------------------------------------------------


def test_two_replicas_both_receive_load(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=8)
    with FakeOpenAIServer(ExpertModel(), latency=0.02) as a, FakeOpenAIServer(ExpertModel(), latency=0.02) as b:
        model = endpoint(f"{a.url},{b.url}")
        trajectories = run_eval(model, config, tmp_path / "run", progress=False, concurrency=4)
        counts = len(a.requests), len(b.requests)
    assert len(trajectories) == 8 and all(t.reward == 1.0 for t in trajectories)
    stats = model.stats()
    assert min(counts) >= sum(counts) // 4, counts  # least-in-flight spreads equal replicas evenly
    assert [row["requests"] for row in stats["endpoints"]] == list(counts) and stats["requests"] == sum(counts)


def test_a_slower_replica_gets_less_work(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=6)
    with FakeOpenAIServer(ExpertModel(), latency=0.2) as slow, FakeOpenAIServer(ExpertModel(), latency=0.01) as fast:
        run_eval(endpoint([slow.url, fast.url]), config, tmp_path / "run", progress=False, concurrency=2)
        assert 0 < len(slow.requests) < len(fast.requests)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_requests_in_flight_never_exceed_the_concurrency(tmp_path: Path, concurrency: int) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=10)
    with FakeOpenAIServer(ExpertModel(), latency=0.03) as server:
        model = endpoint(server.url)
        run_eval(model, config, tmp_path / "run", progress=False, concurrency=concurrency)
        peak = server.max_in_flight
    assert peak <= concurrency and model.stats()["max_in_flight"] <= concurrency
    assert peak >= min(concurrency, 2)  # and they do overlap when allowed to


def test_the_cli_takes_replicas_repeated_or_as_a_comma_list(tmp_path: Path) -> None:
    from toolenv.cli import build_parser

    urls = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    repeated = build_parser().parse_args(["eval", "--endpoint", urls[0], "--endpoint", urls[1] + "/"])
    listed = build_parser().parse_args(["eval", "--endpoint", ",".join(urls)])
    assert endpoint(repeated.endpoint).base_urls == endpoint(listed.endpoint).base_urls == urls
    with FakeOpenAIServer(ExpertModel()) as a, FakeOpenAIServer(ExpertModel()) as b:
        done = toolenv(*base_args(a.url, tmp_path / "run", "--endpoint", b.url, "--limit", "4", "--quiet"))
        assert done.returncode == 0, done.stderr
        assert a.requests and b.requests


def test_credentials_in_a_url_are_never_shown() -> None:
    model = endpoint("http://user:hunter2@127.0.0.1:9/v1")
    with pytest.raises(ModelError) as refused:
        model.generate([[{"role": "user", "content": "hi"}]])
    assert "hunter2" not in repr(model) + json.dumps(model.stats()) + str(refused.value)


def test_the_cli_default_concurrency_is_the_runners() -> None:
    from evaluators import cli, concurrent

    assert cli.DEFAULT_CONCURRENCY == concurrent.DEFAULT_CONCURRENCY


# -- progress -----------------------------------------------------------------------------------


def test_the_progress_bar_shows_episodes_rate_and_requests_in_flight(tmp_path: Path) -> None:
    # one request at a time, each taking 0.1 s: the run outlasts the bar's one-second delay
    with FakeOpenAIServer(ExpertModel(), latency=0.1) as server:
        done = toolenv(*base_args(server.url, tmp_path / "run", "--limit", "4", "--concurrency", "1"))
        quiet = toolenv(*base_args(server.url, tmp_path / "quiet", "--limit", "4", "--quiet"))
    assert done.returncode == 0, done.stderr
    final = done.stderr.strip().splitlines()[-1].split("\r")[-1]
    assert final.startswith("100%") and "4/4 episodes" in final and "4 passed" in final, final
    assert "ep/s" in final or "s/ep" in final  # the rate, whichever way round tqdm shows it
    assert "in flight" in done.stderr
    assert quiet.returncode == 0 and quiet.stderr == ""


# -- training metrics to TensorBoard ---------------------------------------------------------------


def test_tensorboard_tracker_needs_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from trainers.config import config_from_dict

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ValueError, match=r"tracker = \"tensorboard\" needs the tensorboard package: pip install"):
        config_from_dict({"monitor": {"tracker": "tensorboard"}}, "run.toml")
    with pytest.raises(ValueError, match=r"\[monitor\] tracker = 'wandb'; valid: none, tensorboard"):
        config_from_dict({"monitor": {"tracker": "wandb"}}, "run.toml")
    assert config_from_dict({}, "run.toml").monitor.tracker == "none"


def test_tensorboard_gets_the_scalars_of_metrics_jsonl(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("torch")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainers.monitor import MetricsWriter, read_metrics

    writer = MetricsWriter(tmp_path, tracker="tensorboard")
    for step in range(3):
        writer.write(step, {"loss": 1.0 / (step + 1), "reward/mean": 0.5, "warning": "no"})
    resumed = MetricsWriter(tmp_path, resume_step=1, tracker="tensorboard")  # step 2 is redone
    resumed.write(2, {"loss": 0.25, "reward/mean": 0.75})
    writer.close()
    resumed.close()
    rows = read_metrics(tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    for name in ("loss", "reward/mean"):
        assert {e.step: pytest.approx(e.value) for e in events.Scalars(name)} == {r["step"]: r[name] for r in rows}
