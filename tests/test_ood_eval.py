"""OOD in the evaluation pipeline and the generation CLI: `toolenv eval --ood` plays each task in
distribution and as each variant, reports them side by side with the drop, resumes, and
re-scores variant trajectories; `toolenv ood generate` writes JSONL, a HF dataset, Parquet and
a manifest, byte-identical for the same spec and seed; exported tasks play back through the env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import pytest

import ood_variants  # noqa: F401
from evaluators.runner import RunConfig, episode_tasks, run_eval, run_meta, score_and_report
from evaluators.scoring import score_trajectory
from ood_variants.generate import JSONL, MANIFEST, generate, load_variant_tasks, verify
from ood_variants.registry import make_variant
from tests.fakes import FakeOpenAIServer
from toolenv.data import load_task_file
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions
from toolenv.formats import PromptStyle, get_codec, tool_specs
from toolenv.inference import ChatModel
from toolenv.selection import select_tasks

TOOLENV = [sys.executable, "-m", "toolenv.cli"]


class VariantOracle(ChatModel):
    """Plays the oracle of whichever task (official or variant) a conversation belongs to,
    recognised by its opening messages; ``fail_specs``: variants it answers with a plain reply
    (so a report has a real drop to show)."""

    def __init__(self, tasks: Sequence[Any], call_format: str = "hermes", fail_specs: Sequence[str] = ()) -> None:
        self.name = "variant-oracle"
        self.by_opening: dict[str, tuple[Any, Any]] = {}
        self.fail_specs = set(fail_specs)
        for task in tasks:
            options = task.format_options
            codec = get_codec(options.get("call_format", call_format), PromptStyle.from_options(options))
            opening = codec.opening_messages(tool_specs(task.tool_docs()), [m.to_dict() for m in task.turns[0]])
            self.by_opening[json.dumps(opening[:2])] = (task, codec)

    def next_action(self, messages: Sequence[dict[str, Any]]) -> Any:
        task, codec = self.by_opening[json.dumps([{"role": m["role"], "content": m["content"]} for m in messages[:2]])]
        if task.ood_spec in self.fail_specs:
            return "I cannot help with that."
        done = sum(1 for m in messages if m["role"] == "assistant")
        actions = expert_actions(task, codec)
        return actions[done] if done < len(actions) else "done"

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        return [self.next_action(messages) for messages in conversations]


SPECS = ("rename_tools+shuffle_schema", "perturb_values+python_list_format", "add_distractors+yaml_docs+tools_in_user")


def test_eval_with_ood_reports_each_variant_side_by_side_with_the_drop(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base", "miss_func"), limit=6, batch_size=4, ood=SPECS, ood_seed=3)
    model = VariantOracle(episode_tasks(config), fail_specs=[SPECS[1]])
    out = tmp_path / "run"
    trajectories = run_eval(model, config, out, progress=False)
    assert len(trajectories) == 6 * 4
    by_spec: dict[str, list] = {}
    for trajectory in trajectories:
        by_spec.setdefault(trajectory.meta.get("ood", ""), []).append(trajectory)
    assert set(by_spec) == {"", *SPECS} and all(len(v) == 6 for v in by_spec.values())
    assert {t.call_format for t in by_spec[SPECS[1]]} == {"python"}
    assert all(t.meta["ood_seed"] == 3 for spec in SPECS for t in by_spec[spec])
    # scoring rebuilds each variant from the spec and seed the trajectory records
    assert all(score_trajectory(t).verdict.passed == (t.meta.get("ood") != SPECS[1]) for t in trajectories)
    paths = score_and_report(out, trajectories, run_meta(out))
    report = json.loads(paths["json"].read_text())
    assert report["summary"]["overall"] == 1.0 and len(report["tasks"]) == 6
    rows = {row["spec"]: row for row in report["ood"]["variants"]}
    assert rows[SPECS[0]]["overall"] == 1.0 and rows[SPECS[0]]["drop"] == 0.0
    assert rows[SPECS[1]]["overall"] == 0.0 and rows[SPECS[1]]["drop"] == 1.0 and rows[SPECS[1]]["lost"] == 6
    assert report["ood"]["seeds"] == [3] and report["ood_seed"] == 3
    markdown = paths["markdown"].read_text()
    assert "## In distribution vs OOD variants (seed 3)" in markdown
    assert f"| `{SPECS[1]}` | 6 | 0.00% | -100.00 |" in markdown
    assert "id='ood'" in paths["html"].read_text()


def test_eval_with_ood_resumes_without_doubling(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=3, batch_size=2, ood=SPECS[:2], ood_seed=1)
    model = VariantOracle(episode_tasks(config))
    out = tmp_path / "run"
    first = run_eval(model, config, out, progress=False)
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    (out / "trajectories.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:50])  # killed mid-write
    again = run_eval(model, config, out, progress=False)
    key = lambda t: (t.meta.get("ood", ""), t.task_id)  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, first)) and len(again) == 9


def test_a_run_without_ood_keeps_its_old_configuration_form() -> None:
    assert "ood" not in RunConfig(model="m").to_dict() and "ood_seed" not in RunConfig(model="m").to_dict()


def test_cli_eval_with_ood_through_an_endpoint(tmp_path: Path) -> None:
    config = RunConfig(model="m", categories=("base",), limit=2, ood=("rename_params:opaque",), ood_seed=2)
    with FakeOpenAIServer(VariantOracle(episode_tasks(config))) as server:  # type: ignore[arg-type]
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
                "2",
                "--ood",
                "rename_params:opaque",
                "--ood-seed",
                "2",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    assert "| `rename_params:opaque` | 2 | 100.00% | +0.00 |" in done.stdout
    rescored = subprocess.run([*TOOLENV, "score", str(tmp_path / "run")], capture_output=True, text=True)
    assert rescored.returncode == 0 and "| `rename_params:opaque` | 2 | 100.00% | +0.00 |" in rescored.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--ood", "rename_toolz", "--out", "{tmp}/x"], "unknown OOD transform 'rename_toolz'"),
        (["eval", "--ood", "xml_format+openai_format", "--out", "{tmp}/x"], "incompatible OOD spec"),
        (
            ["ood", "generate", "--variants", "shuffle_schema", "nope", "--out", "{tmp}/x"],
            "unknown OOD transform 'nope'",
        ),
        (
            ["ood", "generate", "--variants", "shuffle_schema", "--categories", "bogus", "--out", "{tmp}/x"],
            "unknown category 'bogus'",
        ),
    ],
)
def test_bad_ood_input_gives_one_line_and_nonzero_exit(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*TOOLENV, *[a.replace("{tmp}", str(tmp_path)) for a in args]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "valid:" in done.stderr, done.stderr


def test_generate_writes_jsonl_dataset_parquet_and_manifest_deterministically(tmp_path: Path) -> None:
    specs = ["rename_tools+shuffle_schema", "perturb_values+xml_format"]
    args = [
        "ood",
        "generate",
        "--variants",
        *specs,
        "--seed",
        "4",
        "--categories",
        "base",
        "--split",
        "test",
        "--quiet",
    ]
    for name in ("a", "b"):
        done = subprocess.run([*TOOLENV, *args, "--out", str(tmp_path / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    for file in (JSONL, MANIFEST):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    manifest = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert manifest["specs"] == specs and manifest["seed"] == 4 and manifest["counts"] == {s: 100 for s in specs}
    assert manifest["data_version"].startswith("bfcl-eval==") and not verify(tmp_path / "a")
    from_jsonl = load_task_file(tmp_path / "a" / JSONL)
    assert (
        from_jsonl
        == load_variant_tasks(tmp_path / "a" / "tasks.parquet")
        == load_variant_tasks(tmp_path / "a" / "dataset")
    )
    tasks = select_tasks("base", "test")
    assert from_jsonl == [make_variant(t, s, 4) for s in specs for t in tasks]
    other = generate(tmp_path / "c", tasks, specs, 5, tables=False)
    assert other["jsonl_sha256"] != manifest["jsonl_sha256"]


def test_exported_variants_play_through_the_env_from_the_task_file(tmp_path: Path) -> None:
    tasks = select_tasks("miss_func")[:20]
    generate(tmp_path / "set", tasks, ["rename_tools:opaque+rename_params+openai_format"], 9, tables=False)
    env = BFCLEnv(task_file=str(tmp_path / "set" / JSONL), categories=["miss_func"])
    assert len(env.tasks) == 20 and all(t.is_variant for t in env.tasks)
    for task in env.tasks:
        env.reset(options={"task_id": task.id})
        assert env.codec.name == "openai"
        for action in expert_actions(env.task, env.codec):
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        assert reward == 1.0
        assert env.trajectory.meta["ood"] == task.ood_spec and score_trajectory(env.trajectory).verdict.passed


def test_generate_without_datasets_is_a_one_line_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['datasets'] = None\n"
        "from toolenv.cli import main\n"
        f"sys.exit(main(['ood', 'generate', '--variants', 'shuffle_schema', '--categories', 'base', '--out', {str(tmp_path / 'x')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "needs the 'datasets' package" in done.stderr


def test_ood_list_and_show() -> None:
    listing = subprocess.run([*TOOLENV, "ood", "list"], capture_output=True, text=True)
    assert listing.returncode == 0
    from ood_variants.registry import TRANSFORMS

    assert all(line.split()[0].split("[")[0] in TRANSFORMS for line in listing.stdout.splitlines())
    assert len(listing.stdout.splitlines()) == len(TRANSFORMS)
    shown = subprocess.run(
        [
            *TOOLENV,
            "ood",
            "show",
            "--variant",
            "rename_tools:opaque+yaml_docs",
            "--task",
            "multi_turn_base_0",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    before, after = shown.stdout.split("===== after")
    assert "cd(folder='document')" in before and "- name: " in after and "cd(folder=" not in after


def test_a_task_file_with_several_variants_of_a_task_picks_by_spec(tmp_path: Path) -> None:
    tasks = select_tasks("base")[:3]
    specs = ["shuffle_schema", "perturb_values+xml_format"]
    generate(tmp_path / "set", tasks, specs, 1, tables=False)
    env = BFCLEnv(task_file=str(tmp_path / "set" / JSONL))
    assert len(env.tasks) == 6
    for spec in specs:
        _, info = env.reset(options={"task_id": tasks[1].id, "ood": spec})
        assert info["ood"] == spec and env.task == make_variant(tasks[1], spec, 1)
    with pytest.raises(ValueError, match="is not among"):
        env.reset(options={"task_id": tasks[1].id, "ood": "rename_tools"})


# -- issue #12, defects 3 and 5: ood subcommand inputs, help and the --ood spelling -------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ood", "show", "--ood", "rename_tools", "--task", "5"],
            "unknown task '5'; a task id looks like multi_turn_base_5",
        ),
        (
            ["ood", "show", "--variant", "rename_tools", "--task", "5"],
            "unknown task '5'; a task id looks like multi_turn_base_5",
        ),
        (["ood", "show", "--ood", "rename_tools", "--task", "base_5"], "a task id looks like multi_turn_base_5"),
        (
            ["ood", "show", "--ood", "rename_tools", "--task", "multi_turn_base_200"],
            "no task with id 'multi_turn_base_200'; base holds",
        ),
        (["ood", "show", "--ood", "rename_toolz"], "unknown OOD transform 'rename_toolz'"),
        (["ood", "show", "--ood", "rename_tools", "--format", "yaml"], "unknown call format 'yaml'; valid: hermes"),
        (["ood", "show", "--ood", "rename_tools", "--tools", "0"], "--tools must be a positive number"),
        (["ood", "show"], "ood show needs --ood SPEC"),
        (["ood", "generate", "--out", "{tmp}/x"], "ood generate needs --ood SPEC"),
        (
            ["ood", "generate", "--ood", "shuffle_schema", "--split", "half", "--out", "{tmp}/x"],
            "unknown split 'half'; valid: all",
        ),
        (
            ["ood", "generate", "--ood", "shuffle_schema", "--categories", "5", "--out", "{tmp}/x"],
            "unknown category '5'; valid:",
        ),
    ],
)
def test_bad_ood_subcommand_input_says_what_is_valid_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*TOOLENV, *[a.replace("{tmp}", str(tmp_path)) for a in args]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "x").exists()


def _ood_subparsers() -> dict[str, Any]:
    import argparse

    from toolenv.cli import build_parser

    def children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return dict(action.choices)

    return children(children(build_parser())["ood"])


def test_every_ood_subcommand_argument_has_help_with_its_default() -> None:
    import argparse

    subparsers = _ood_subparsers()
    assert set(subparsers) == {"list", "generate", "show"}
    for name, parser in subparsers.items():
        text = parser.format_help()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue  # hidden aliases and -h
            assert action.help, f"ood {name} {action.option_strings}: no help text"
            if action.default not in (None, False) and not action.required:
                shown = f"(default: {action.default})"
                assert shown in " ".join(text.split()), f"ood {name} {action.option_strings}: {shown} not in --help"


def test_ood_subcommands_spell_the_flags_as_eval_with_the_old_spelling_hidden() -> None:
    subparsers = _ood_subparsers()
    for name, old in (("generate", "--variants"), ("show", "--variant")):
        parser = subparsers[name]
        specs = ["shuffle_schema", "perturb_values"] if name == "generate" else ["shuffle_schema"]
        tail = ["--out", "x"] if name == "generate" else []
        new = parser.parse_args(["--ood", *specs, "--ood-seed", "3", *tail])
        legacy = parser.parse_args([old, *specs, "--seed", "3", *tail])
        assert vars(new) == vars(legacy)
        assert new.ood == (specs if name == "generate" else specs[0]) and new.ood_seed == 3
        assert parser.parse_args(["--ood", *specs, *tail]).ood_seed == 0
        text = parser.format_help()
        assert "--ood SPEC" in text and "--ood-seed" in text
        assert old not in text and not re.search(r"--seed\b", text), text


def test_ood_show_and_generate_run_with_the_new_and_the_old_spelling(tmp_path: Path) -> None:
    shown = [
        subprocess.run(
            [*TOOLENV, "ood", "show", spec_flag, "rename_tools:opaque", seed_flag, "3", "--task", "multi_turn_base_1"],
            capture_output=True,
            text=True,
        )
        for spec_flag, seed_flag in (("--ood", "--ood-seed"), ("--variant", "--seed"))
    ]
    assert all(done.returncode == 0 for done in shown), [done.stderr for done in shown]
    assert shown[0].stdout == shown[1].stdout and "(seed 3)" in shown[0].stdout
    done = subprocess.run(
        [
            *TOOLENV,
            "ood",
            "generate",
            "--ood",
            "shuffle_schema",
            "--ood-seed",
            "2",
            "--categories",
            "base",
            "--split",
            "test",
            "--jsonl-only",
            "--quiet",
            "--out",
            str(tmp_path / "set"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "set" / MANIFEST).read_text())["seed"] == 2


def test_generation_shows_a_progress_bar_per_spec(tmp_path: Path) -> None:
    args = ["ood", "generate", "--ood", "shuffle_schema", "rename_tools", "--categories", "base", "--jsonl-only"]
    done = subprocess.run([*TOOLENV, *args, "--out", str(tmp_path / "set")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "shuffle_schema: 100%" in done.stderr and "rename_tools: 100%" in done.stderr and "200/200" in done.stderr
    quiet = subprocess.run([*TOOLENV, *args, "--quiet", "--out", str(tmp_path / "q")], capture_output=True, text=True)
    assert quiet.returncode == 0 and "%|" not in quiet.stderr
