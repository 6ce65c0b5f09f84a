"""Bad input to ``toolenv train`` / ``plot`` / ``study`` (issue #12): a report-only study over
missing runs, run files without a mode or model, GPU-sized defaults on a CPU, help text,
progress during the first validation, and numbers out of range. Each refusal is one line on
stderr, exit 2, no traceback, and nothing created or changed on disk."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from toolenv.cli import build_parser
from trainers.config import _MINIMUM, TrainConfig, check_cpu_sizes, config_from_dict, cpu_unsized, load_config
from trainers.study import load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
COMMITTED = ROOT / "docs" / "results" / "study-smollm2-cpu"
TOOLENV = [sys.executable, "-m", "toolenv.cli"]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and mtime: what "nothing changed" means."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _toolenv(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # ROOT on the path: the subprocess runs in a scratch folder, not in the checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*TOOLENV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused command (after checking that it is one)."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("toolenv: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- 1. a report-only study over missing runs ------------------------------------------------


def test_report_only_over_missing_runs_refuses_and_keeps_the_committed_report(tmp_path: Path) -> None:
    # the command, run from a copy of the repository root: runs/ does not exist there
    shutil.copytree(RECIPES / "study_smollm2_cpu", tmp_path / "recipes" / "study_smollm2_cpu")
    shutil.copytree(COMMITTED, tmp_path / "docs" / "results" / "study-smollm2-cpu")
    before, committed = _snapshot(tmp_path), _snapshot(COMMITTED)
    line = _refused(_toolenv(["study", "recipes/study_smollm2_cpu/study.toml", "--report-only"], tmp_path))
    assert (
        "--report-only: no finished evaluation for base, vanilla, sft," in line
        and "prs in runs/study-smollm2-cpu" in line
    )
    assert "run `toolenv study recipes/study_smollm2_cpu/study.toml`" in line and "--force" in line
    assert _snapshot(tmp_path) == before and _snapshot(COMMITTED) == committed


def _tiny_study(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
name = "t"
out_dir = "{tmp_path / "runs"}"
report_dir = "{tmp_path / "report"}"
methods = ["base", "vanilla"]
[study.eval]
categories = ["base"]
format_ood = ""
content_ood = ""
[model]
path = "smollm2"
device = "cpu"
""")
    return path


def _finish(tmp_path: Path, label: str, accuracy: float) -> None:
    """A finished evaluation of ``label`` as :func:`trainers.study.label_row` reads it."""
    folder = tmp_path / "runs" / label / "eval"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(
        json.dumps(
            {
                "summary": {
                    "overall": accuracy,
                    "categories": {"base": {"accuracy": accuracy}},
                    "structure": {},
                    "failures": {},
                }
            }
        )
    )


def test_a_report_is_not_replaced_by_one_with_fewer_finished_labels(tmp_path: Path) -> None:
    study = load_study(_tiny_study(tmp_path))
    _finish(tmp_path, "base", 0.25)
    _finish(tmp_path, "vanilla", 0.5)
    run_study(study, report_only=True)  # both finished: the report is written
    rows = {row["label"]: row for row in json.loads((tmp_path / "report" / "results.json").read_text())["rows"]}
    assert (rows["base"]["id"], rows["vanilla"]["id"]) == (25.0, 50.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs", "study.toml"]  # no scratch folder left
    shutil.rmtree(tmp_path / "runs" / "vanilla")
    # the same settings (a later sitting on a fresh machine): vanilla's row is carried over, marked
    run_study(study, report_only=True)
    rows = {row["label"]: row for row in json.loads((tmp_path / "report" / "results.json").read_text())["rows"]}
    assert rows["vanilla"]["id"] == 50.0 and rows["vanilla"]["carried"] and "carried" not in rows["base"]
    study.config.optim.lr *= 2  # other settings: the row no longer stands for this study's vanilla
    before = _snapshot(tmp_path)
    # report-only: vanilla has no run any more, so it is named and nothing is written
    with pytest.raises(ValueError, match=r"^--report-only: no finished evaluation for vanilla in ") as error:
        run_study(study, report_only=True)
    assert "\n" not in str(error.value)
    # ... also when only base is asked for: the table on disk has vanilla's numbers
    with pytest.raises(ValueError, match=r"refusing to overwrite .*report: it has results for vanilla") as error:
        run_study(study, only=["base"], report_only=True)
    assert "\n" not in str(error.value) and "--force" in str(error.value)
    # ... and a training run of base alone is refused before it trains anything
    with pytest.raises(ValueError, match="refusing to overwrite"):
        run_study(study, only=["base"], log=lambda text: pytest.fail(f"started: {text}"))
    assert _snapshot(tmp_path) == before
    run_study(study, report_only=True, force=True)  # asked for explicitly
    rows = {row["label"]: row for row in json.loads((tmp_path / "report" / "results.json").read_text())["rows"]}
    assert rows["base"]["id"] == 25.0 and rows["vanilla"].get("id") is None


# -- 2. a run file names its mode and model; no GPU-sized defaults on a CPU ------------------


@pytest.mark.parametrize(
    "text, missing",
    [
        ("", ["[run] mode", "[model] path"]),
        ('[run]\nmode = "grpo"\n', ["[model] path"]),
        ('[model]\npath = "smollm2"\n', ["[run] mode"]),
        ('[run]\nseed = 2\n[model]\ndtype = "float32"\n', ["[run] mode", "[model] path"]),
    ],
)
def test_a_run_file_must_name_its_mode_and_model(tmp_path: Path, text: str, missing: list[str]) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message and "must name its mode and model" in message
    assert all(key in message for key in missing) and message.count(" = ") == len(missing)


def test_train_refuses_an_empty_config_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    before = _snapshot(tmp_path)
    line = _refused(_toolenv(["train", "empty.toml"], tmp_path))
    assert '[run] mode = "sft" (or "grpo")' in line and '[model] path = "smollm2"' in line
    assert _snapshot(tmp_path) == before  # in particular no runs/train


def test_cpu_run_refuses_the_papers_gpu_sized_defaults(tmp_path: Path) -> None:
    # from the command line, before a model is loaded or a run folder made
    (tmp_path / "run.toml").write_text('[run]\nmode = "grpo"\n[model]\npath = "smollm2"\ndevice = "cpu"\n')
    before = _snapshot(tmp_path)
    line = _refused(_toolenv(["train", "run.toml"], tmp_path))
    assert "no CUDA device" in line and "[grpo] steps = 300" in line and "[grpo] n = 8" in line
    assert _snapshot(tmp_path) == before
    grpo = config_from_dict({"run": {"mode": "grpo"}, "model": {"path": "smollm2"}}, "run.toml")
    with pytest.raises(ValueError) as error:
        check_cpu_sizes(grpo)
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        "run.toml: no CUDA device, and these GPU-sized defaults are not set: "
    )
    for item in (
        "[grpo] steps = 300",
        "[grpo] prompts_per_step = 60",
        "[grpo] n = 8",
        "[rollout] max_new_tokens = 2048",
        "[monitor] val_max_new_tokens = 2048",
    ):
        assert item in message
    sft = config_from_dict({"run": {"mode": "sft"}, "sft": {"max_steps": 4}, "monitor": {"val_every": 0}})
    assert cpu_unsized(sft) == ["[sft] batch_size = 128", "[sft] max_length = 8192"]  # max_steps bounds the epochs
    # values a file sets are the user's choice, even the paper's own
    check_cpu_sizes(
        config_from_dict(
            {
                "run": {"mode": "grpo"},
                "grpo": {"steps": 300, "prompts_per_step": 60, "n": 8},
                "rollout": {"max_new_tokens": 2048},
                "monitor": {"val_every": 0},
            }
        )
    )


def test_every_recipe_loads_and_the_cpu_recipes_are_cpu_sized() -> None:
    for path in sorted(RECIPES.glob("*.toml")):
        config = load_config(path)
        check_cpu_sizes(config)  # the CPU recipes set their sizes; the paper's set theirs explicitly
    from trainers.study import check_study_sizes

    cpu = load_study(RECIPES / "study_smollm2_cpu" / "study.toml")
    check_study_sizes(cpu, cpu.labels)
    paper = load_study(RECIPES / "study_paper_qwen2.5-1.5b" / "study.toml")
    paper.config.model.device = "cpu"
    with pytest.raises(ValueError, match=r"^sft: .*no CUDA device.*\[sft\] batch_size = 128"):
        check_study_sizes(paper, ["base", "vanilla", "sft"])  # vanilla sets every size it uses (its base file)


# -- 3. help text ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "plot", "study"])
def test_help_documents_every_argument_and_its_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[command]
    formatter = sub.formatter_class(prog=sub.prog)
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"toolenv {command}: {action.dest} has no help text"
        if action.option_strings:
            assert "(default" in (formatter._get_help_string(action) or ""), (
                f"toolenv {command} {action.option_strings[0]}"
            )
    with pytest.raises(SystemExit) as done:
        parser.parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "positional arguments" in text and "(default" in text


# -- 4. progress during the first validation ---------------------------------------------------


@pytest.mark.parametrize("progress", [True, False])
def test_the_validation_before_step_one_shows_progress(
    tmp_path: Path, progress: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
    from toolenv.data import get_task
    from trainers.train import Trainer

    config = config_from_dict(
        {
            "run": {"mode": "sft", "out_dir": str(tmp_path / "run"), "progress": progress},
            "sft": {"batch_size": 2, "max_length": 64, "max_truncated_share": 1.0, "max_steps": 1},
            "monitor": {"val_every": 5, "val_before_train": True, "val_max_new_tokens": 3},
            "checkpoint": {"save_every": 0},
        }
    )
    task = get_task("multi_turn_base_100")
    Trainer(config, tiny_qwen2(seed=3), smollm2_tokenizer(), tasks=[task], validation=[task]).run()
    err = capsys.readouterr().err
    if not progress:  # [run] progress = false silences it
        assert "validation" not in err and "episodes" not in err
        return
    assert "validation before step 1: 1 greedy episodes through the rollout engine\n" in err
    assert "1/1 [" in err and err.index("1/1 [") < err.index("step/s")


# -- 5. numbers out of range -------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, key, value, rule",
    [
        ("grpo", "n", 0, "positive (≥ 1)"),
        ("grpo", "prompts_per_step", -2, "positive (≥ 1)"),
        ("sft", "max_steps", -1, "≥ 0"),
        ("data", "train_limit", -1, "≥ 0"),
        ("optim", "weight_decay", -0.1, "≥ 0"),
        ("optim", "warmup_steps", -1, "≥ 0"),
        ("optim", "lr", 0.0, "positive (> 0)"),
        ("rollout", "max_response_tokens", 0, "positive (≥ 1)"),
        ("rollout", "max_prompt_tokens", -5, "positive (≥ 1)"),
        ("rollout", "max_steps_per_turn", 0, "positive (≥ 1)"),
        ("rollout", "temperature", 0.0, "positive (> 0)"),
        ("grpo", "epsilon", 0.0, "positive (> 0)"),
        ("grpo", "kl_coef", -1e-4, "≥ 0"),
        ("monitor", "val_max_new_tokens", 0, "positive (≥ 1)"),
        ("monitor", "spike_window", 0, "positive (≥ 1)"),
        ("monitor", "val_every", -1, "≥ 0"),
        ("checkpoint", "save_every", -1, "≥ 0"),
        ("checkpoint", "keep_last", -1, "≥ 0"),
    ],
)
def test_zero_or_negative_numbers_name_their_key(section: str, key: str, value: Any, rule: str) -> None:
    with pytest.raises(ValueError) as error:
        config_from_dict({section: {key: value}}, "run.toml")
    assert str(error.value) == f"run.toml: [{section}] {key} must be {rule}, got {value!r}"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"lr": float("nan")}}, "[optim] lr must be a finite number, got nan"),
        ({"optim": {"betas": [0.9, 1.0]}}, "[optim] betas must be < 1"),
        ({"optim": {"betas": [-0.1, 0.9]}}, "[optim] betas must be ≥ 0"),
        ({"rollout": {"top_p": 1.5}}, "[rollout] top_p must be in (0, 1]"),
        ({"rollout": {"top_k": 0}}, "[rollout] top_k must be -1 (no limit) or ≥ 1, got 0"),
        ({"grpo": {"clip_low": 1.0}}, "[grpo] clip_low must be < 1"),
    ],
)
def test_other_out_of_range_numbers(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        config_from_dict(data, "run.toml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_numeric_key_has_a_lower_bound() -> None:
    config = TrainConfig()
    for section in dataclasses.fields(TrainConfig):
        if section.name in ("source", "given"):
            continue
        hints = typing.get_type_hints(type(getattr(config, section.name)))
        for key, hint in hints.items():
            if hint in (int, float, list[float], list[int]):
                assert (section.name, key) in _MINIMUM, f"[{section.name}] {key} has no bound"


@pytest.mark.parametrize("key, value", [("batch_size", 0), ("max_new_tokens", 0), ("limit", -1), ("batch_size", "8")])
def test_study_eval_numbers_are_checked(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "study.toml"
    path.write_text(f'[study]\nmethods = ["base"]\n[study.eval]\n{key} = {json.dumps(value)}\n')
    with pytest.raises(ValueError) as error:
        load_study(path)
    assert f"[study.eval] {key} must be" in str(error.value) and "\n" not in str(error.value)


def test_train_refuses_a_zero_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[run]\nmode = "grpo"\n[model]\npath = "smollm2"\n[grpo]\nn = 0\n')
    before = _snapshot(tmp_path)
    line = _refused(_toolenv(["train", "run.toml"], tmp_path))
    assert line == "toolenv: error: run.toml: [grpo] n must be positive (≥ 1), got 0"
    assert _snapshot(tmp_path) == before


def test_the_bookkeeping_field_is_not_a_section() -> None:
    # TrainConfig.given records the keys a file set; it must not be settable from a file
    with pytest.raises(ValueError, match=r"unknown section \[given\]; valid: run, model, data, optim, sft, grpo, "):
        config_from_dict({"given": {}}, "run.toml")
    assert "given" not in TrainConfig().to_dict()
