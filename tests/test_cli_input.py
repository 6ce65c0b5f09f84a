"""The command line under bad input: every subcommand refuses a bad value with exit != 0, one
line on stderr and no traceback, and leaves the disk exactly as it was; and the user-path fixes
of the run, score and export commands (issue #12)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluators.runner import RunConfig, run_eval
from tests.fakes import ChatServer, ExpertModel, FakeOpenAIServer
from toolenv.cli import build_parser

TOOLENV = [sys.executable, "-m", "toolenv.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")}


def toolenv(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOOLENV, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished oracle run, an empty run, a run with a corrupt run.json, BFCL files and TOMLs."""
    root = tmp_path_factory.mktemp("cli")
    run_eval(
        ExpertModel(fail_every=2),
        RunConfig(model="oracle", categories=("base",), limit=4),
        root / "run",
        progress=False,
    )
    empty = root / "empty_run"
    shutil.copytree(root / "run", empty)
    (empty / "trajectories.jsonl").write_text("")
    corrupt = root / "corrupt_run"
    shutil.copytree(root / "run", corrupt)
    (corrupt / "run.json").write_text("{not json")
    (root / "bfcl_corrupt").mkdir()
    (root / "bfcl_corrupt" / "BFCL_v4_multi_turn_base_result.json").write_text(
        '{"id": "multi_turn_base_0", "result": [[\n'
    )
    (root / "bfcl_single").mkdir()
    (root / "bfcl_single" / "BFCL_v4_simple_result.json").write_text('{"id": "simple_0", "result": "x"}\n')
    (root / "a_file").write_text("not a folder")
    (root / "empty.toml").write_text("")
    (root / "no_mode.toml").write_text('[model]\npath = "x"\n')
    (root / "bad.toml").write_text("[run\n")
    (root / "bad_release.toml").write_text('[run]\nmode = "sft"\n[model]\npath = "x"\n[data]\ndata_version = "1.0"\n')
    return root


BAD_INPUT = [
    # eval: every value is refused before the model loads or the run folder is touched
    (["eval", "--split", "tst", "--out", "{tmp}/new"], "unknown split 'tst'"),
    (["eval", "--limit", "0", "--out", "{tmp}/new"], "--limit: must be >= 1"),
    (["eval", "--limit", "-3", "--out", "{tmp}/new"], "--limit: must be >= 1"),
    (["eval", "--limit", "many", "--out", "{tmp}/new"], "expected a whole number"),
    (["eval", "--batch-size", "0", "--out", "{tmp}/new"], "--batch-size: must be >= 1"),
    (["eval", "--max-new-tokens", "0", "--out", "{tmp}/new"], "--max-new-tokens: must be >= 1"),
    (["eval", "--max-steps-per-turn", "0", "--out", "{tmp}/new"], "--max-steps-per-turn: must be >= 1"),
    (["eval", "--repeats", "0", "--out", "{tmp}/new"], "--repeats: must be >= 1"),
    (["eval", "--repeats", "-2", "--out", "{tmp}/new"], "--repeats: must be >= 1"),
    (["eval", "--repeats", "1.5", "--out", "{tmp}/new"], "expected a whole number"),
    (["eval", "--temperature", "-1", "--out", "{tmp}/new"], "--temperature: must be >= 0"),
    (["eval", "--temperature", "nan", "--out", "{tmp}/new"], "--temperature: must be >= 0"),
    (["eval", "--timeout", "0", "--out", "{tmp}/new"], "--timeout: must be > 0"),
    (["eval", "--concurrency", "0", "--out", "{tmp}/new"], "--concurrency: must be >= 1"),
    (["eval", "--concurrency", "lots", "--out", "{tmp}/new"], "expected a whole number >= 1"),
    (["eval", "--retries", "-1", "--out", "{tmp}/new"], "--retries: must be >= 0"),
    (["eval", "--retries", "two", "--out", "{tmp}/new"], "expected a whole number >= 0"),
    (
        ["eval", "--endpoint", "http://127.0.0.1:9/v1,ftp://host/v1", "--model", "m", "--out", "{tmp}/new"],
        "'ftp://host/v1' is not an http(s) URL",
    ),
    (["eval", "--endpoint", " , ", "--model", "m", "--out", "{tmp}/new"], "no endpoint URL given"),
    (["eval", "--format", "yaml", "--out", "{tmp}/new"], "unknown call format 'yaml'"),
    (["eval", "--categories", "nope", "--out", "{tmp}/new"], "unknown category 'nope'"),
    (["eval", "--ood", "no_such_transform", "--out", "{tmp}/new"], "no_such_transform"),
    (["eval", "--model", "{tmp}/missing-model", "--out", "{tmp}/new"], "no transformers model at"),
    (["eval", "--model", "{tmp}", "--out", "{tmp}/new"], "no transformers model at"),
    (["eval", "--endpoint", "ftp://host/v1", "--model", "m", "--out", "{tmp}/new"], "not an http(s) URL"),
    (["eval", "--endpoint", "http://127.0.0.1:9/v1", "--out", "{tmp}/new"], "an endpoint needs --model"),
    (
        [
            "eval",
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--api-key-env",
            "TOOLENV_NO_SUCH_VAR",
            "--out",
            "{tmp}/new",
        ],
        "TOOLENV_NO_SUCH_VAR",
    ),
    (["eval", "--categories", "base", "--limit", "3", "--out", "{tmp}/run"], "holds a run with another configuration"),
    (["eval", "--out", "{tmp}/a_file"], "is a file, not a run folder"),
    (["eval", "--data-version", "2099.1.1", "--out", "{tmp}/new"], "unknown BFCL data version '2099.1.1'"),
    (
        ["eval", "--categories", "base", "--limit", "4", "--data-version", "2025.10.2", "--out", "{tmp}/run"],
        "holds a run on bfcl-eval 2026.3.23; resume it with --data-version 2026.3.23",
    ),
    (["eval", "--out", "{tmp}/corrupt_run"], "corrupt_run/run.json is not valid JSON"),
    # score
    (["score", "{tmp}/nothing"], "holds no trajectories.jsonl (no such folder)"),
    (["score", "{tmp}/nothing", "--bfcl-results"], "no such BFCL result file or folder"),
    (["score", "{tmp}/a_file"], "holds no trajectories.jsonl"),
    (["score", "{tmp}/empty_run"], "holds no finished episode"),
    (["score", "{tmp}/corrupt_run"], "corrupt_run/run.json is not valid JSON"),
    (["score", "{tmp}/run", "--out", "{tmp}/a_file"], "is a file, not a folder"),
    (
        ["score", "{tmp}/run", "--data-version", "2025.10.2"],
        "was played on bfcl-eval 2026.3.23; score it with --data-version",
    ),
    (["score", "{tmp}/bfcl_corrupt", "--bfcl-results"], "not valid JSON"),
    (["score", "{tmp}/bfcl_single", "--bfcl-results", "--out", "{tmp}/new"], "multi"),
    # export
    (["export", "{tmp}/empty_run", "--out", "{tmp}/new"], "nothing to export"),
    (["export", "{tmp}/nothing", "--out", "{tmp}/new"], "holds no trajectories.jsonl"),
    (["export", "{tmp}/run"], "--out"),
    (["export", "{tmp}/run", "--out", "{tmp}/a_file"], "is a file, not a folder"),
    # the other commands
    (["replay", "--categories", "nope"], "unknown category 'nope'"),
    (["data"], "required"),
    (["no-such-command"], "invalid choice"),
    (["ood", "show", "--task", "5", "--ood", "rename_tools"], "multi_turn_base_5"),
    (
        ["ood", "generate", "--ood", "shuffle_schema", "--categories", "bogus", "--out", "{tmp}/new"],
        "unknown category 'bogus'",
    ),
    (["train", "{tmp}/missing.toml"], "missing.toml"),
    (["train", "{tmp}/bad.toml"], "bad.toml"),
    (["train", "{tmp}/empty.toml"], "mode"),
    (["train", "{tmp}/no_mode.toml"], "mode"),
    (["train", "{tmp}/bad_release.toml"], "[data] data_version: unknown BFCL data version '1.0'"),
    (["replay", "--data-version", "latest"], "unknown BFCL data version 'latest'"),
    (["plot", "{tmp}/nothing"], "nothing"),
    (["study", "{tmp}/missing.toml"], "missing.toml"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a[:3]) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(workspace: Path, args: list[str], message: str) -> None:
    before = listing(workspace)
    done = toolenv(*[a.replace("{tmp}", str(workspace)) for a in args], cwd=workspace)
    assert done.returncode != 0, done.stdout[-500:]
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert listing(workspace) == before, "a refused command changed the disk"


def test_a_refused_eval_leaves_nothing_that_blocks_the_corrected_command(tmp_path: Path) -> None:
    """Issue #12.5: `--split tst` wrote run.json, so the corrected command then failed with
    "holds a run with another configuration"."""
    out = tmp_path / "run"
    with FakeOpenAIServer(ExpertModel()) as server:
        base = [
            "eval",
            "--endpoint",
            server.url,
            "--model",
            "oracle",
            "--categories",
            "base",
            "--limit",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
        assert toolenv(*base, "--split", "tst").returncode == 2
        assert not out.exists()
        done = toolenv(*base, "--split", "test")
    assert done.returncode == 0, done.stderr
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2


def test_score_reads_an_interrupted_run_without_changing_it(workspace: Path, tmp_path: Path) -> None:
    """A half-written last line (what a killed run leaves) is left out with a warning, the file
    is not modified (only `eval` resume repairs it) and the numbers are those of the whole lines."""
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    for name in ("report.json", "report.md", "report.html"):
        (run / name).unlink(missing_ok=True)
    whole = toolenv("score", str(workspace / "run"), "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    path = run / "trajectories.jsonl"
    path.write_bytes(path.read_bytes() + b'{"task_id": "multi_turn_base_9", "turns": [')
    raw = path.read_bytes()
    done = toolenv("score", str(run))
    assert done.returncode == 0, done.stderr
    assert "half-written line" in done.stderr and done.stderr.count("\n") == 1
    assert path.read_bytes() == raw
    ours = json.loads((run / "report.json").read_text())
    reference = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert ours["summary"] == reference["summary"] and ours["tasks"] == reference["tasks"]


def test_score_creates_a_missing_out_folder(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "nested"
    done = toolenv("score", str(workspace / "run"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html"}


class _HeaderServer(ChatServer):
    def __init__(self) -> None:
        super().__init__(lambda body: "No tools needed.")


def test_endpoint_api_key_is_sent_and_never_written(tmp_path: Path) -> None:
    """Issue #12.9: the key comes from an environment variable, goes out as a Bearer header,
    and appears in no output and no file of the run folder."""
    key = "sk-test-7f3a9c0e-do-not-print"
    out = tmp_path / "run"
    with _HeaderServer() as server:
        done = subprocess.run(
            [
                *TOOLENV,
                "eval",
                "--endpoint",
                server.url,
                "--model",
                "m",
                "--categories",
                "base",
                "--limit",
                "1",
                "--api-key-env",
                "MY_SERVER_KEY",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env={**ENV, "MY_SERVER_KEY": key},
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert server.headers and all(h.get("Authorization") == f"Bearer {key}" for h in server.headers)
    assert key not in done.stdout + done.stderr
    for path in out.rglob("*"):
        assert key not in path.read_text(errors="replace"), path


def test_endpoint_timeout_is_configurable(tmp_path: Path) -> None:
    def slow(body: dict) -> str:
        time.sleep(2.0)
        return "late"

    with ChatServer(slow) as server:
        started = time.monotonic()
        done = toolenv(
            "eval",
            "--endpoint",
            server.url,
            "--model",
            "m",
            "--categories",
            "base",
            "--limit",
            "1",
            "--timeout",
            "0.3",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "did not answer within 0.3 s" in done.stderr, done.stderr
    assert elapsed < 60  # a sanity bound on the refusal, not a speed claim


def _parsers(parser: argparse.ArgumentParser, path: str = "toolenv"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_argument_of_every_command_has_help() -> None:
    missing = [
        f"{path}: {action.dest}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and not (action.help or "").strip()
        and action.help is not argparse.SUPPRESS
    ]
    assert missing == []


def test_help_lists_every_command_and_shows_defaults() -> None:
    parser = build_parser()
    text = parser.format_help()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"data", "replay", "eval", "score", "export", "ood", "train", "plot", "study"} <= set(commands)
    assert all(f"    {name} " in text for name in commands)
    evaluate = commands["eval"].format_help()
    assert "(default: 8)" in evaluate and "(default: runs/eval)" in evaluate and "(default: 0.0)" in evaluate


def test_version() -> None:
    done = toolenv("--version")
    assert done.returncode == 0 and done.stdout.startswith("toolenv ") and "bfcl-eval 2026.3.23" in done.stdout


def test_a_repeated_episode_is_counted_once_with_a_warning(workspace: Path, tmp_path: Path) -> None:
    """Issue #12.2: `score` on a trajectories file holding an episode twice counted it twice."""
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    path = run / "trajectories.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + lines[:1]))
    done = toolenv("score", str(run))
    assert done.returncode == 0, done.stderr
    assert "1 duplicate episode(s) dropped" in done.stderr and done.stderr.count("\n") == 1
    assert toolenv("score", str(workspace / "run"), "--out", str(tmp_path / "once")).returncode == 0
    report = json.loads((run / "report.json").read_text())
    reference = json.loads((tmp_path / "once" / "report.json").read_text())
    assert report["summary"] == reference["summary"] and report["summary"]["tasks"] == 4
    assert report["duplicates_dropped"] == 1
