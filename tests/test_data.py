"""Task loading from the official distribution: counts, immutability, fidelity, cache errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import envs._official as official
from envs import BACKEND_MODULES
from envs._official import WHEEL_SHA256, DataError, distribution
from toolenv.data import (
    API_SHORT_NAMES,
    CATEGORIES,
    Task,
    get_task,
    load_tasks,
    normalize_api,
    normalize_category,
    raw_entries,
)
from toolenv.selection import select_tasks


def test_four_categories_of_200() -> None:
    for category in CATEGORIES:
        tasks = load_tasks(category)
        assert [t.id for t in tasks] == [f"multi_turn_{category}_{i}" for i in range(200)]
        assert all(len(t.turns) == len(t.ground_truth) for t in tasks)
    assert len(load_tasks()) == 800


def test_tasks_equal_the_official_json_lines() -> None:
    root = Path(distribution().root) if distribution().kind != "wheel" else None
    for category in CATEGORIES:
        for entry, task in zip(raw_entries(category), load_tasks(category)):
            assert [[m.to_dict() for m in turn] for turn in task.turns] == entry["question"]
            assert task.initial_config == entry.get("initial_config", {})
            assert list(task.involved_classes) == entry["involved_classes"]
            assert {str(k): list(v) for k, v in task.held_out} == entry.get("missed_function", {})
    if root is not None:  # and the raw reader agrees with the bytes on disk
        first = (root / "data/BFCL_v4_multi_turn_base.json").read_text().splitlines()[0]
        assert json.loads(first) == raw_entries("base")[0]


def test_held_out_functions_only_in_miss_func() -> None:
    for task in load_tasks():
        if task.category == "miss_func":
            assert len(task.held_out) == 1
            ((turn, names),) = task.held_out
            assert task.turns[turn] == () and names
            initial = {d["name"] for d in task.tool_docs()}
            assert not initial & set(names)
            assert set(names) <= {d["name"] for d in task.tool_docs(revealed_up_to=turn)}
        else:
            assert task.held_out == ()


def test_excluded_function_is_informational_like_the_reference() -> None:
    task = get_task("multi_turn_base_0")
    assert "cp" in task.excluded_function or task.excluded_function
    assert "cp" in {d["name"] for d in task.tool_docs()}


def test_tasks_are_immutable_and_configs_fresh() -> None:
    task = load_tasks("base")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.id = "x"  # type: ignore[misc]
    config = task.initial_config
    config.clear()
    assert task.initial_config != {}
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_long_context_flag_and_version() -> None:
    assert all(t.long_context == (t.category == "long_context") for t in load_tasks())
    assert all("2026.3.23" in t.data_version for t in load_tasks())


@pytest.mark.parametrize("bad", ["basic", "multi_turn_composite", "", "long-context"])
def test_unknown_category_is_a_one_line_error(bad: str) -> None:
    with pytest.raises(DataError) as info:
        normalize_category(bad)
    assert "\n" not in str(info.value) and "valid:" in str(info.value)


def test_bad_source_folder_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLENV_BFCL_SOURCE", str(tmp_path))
    official._distribution.cache_clear()
    try:
        with pytest.raises(DataError, match="TOOLENV_BFCL_SOURCE"):
            official.distribution()
    finally:
        monkeypatch.delenv("TOOLENV_BFCL_SOURCE")
        official._distribution.cache_clear()


def test_wheel_cache_fetch_verify_and_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetch the pinned wheel from the package registry into an empty cache, read the same data
    from it, then corrupt it and get a one-line error that says how to fix it."""
    monkeypatch.setenv("TOOLENV_HOME", str(tmp_path))
    monkeypatch.setattr(official, "_installed", lambda version: None)
    official._distribution.cache_clear()
    try:
        wheel = official.fetch_wheel(quiet=True)
        assert official.sha256_of(wheel) == WHEEL_SHA256
        from_wheel = official.distribution()
        assert from_wheel.kind == "wheel"
        lines = from_wheel.read_text("data/BFCL_v4_multi_turn_base.json").splitlines()
        assert json.loads(lines[0]) == raw_entries("base")[0]

        wheel.write_bytes(wheel.read_bytes()[:-100] + b"x" * 100)
        official._distribution.cache_clear()
        with pytest.raises(DataError) as info:
            official.distribution()
        message = str(info.value)
        assert "corrupt" in message and "toolenv data fetch --force" in message and "\n" not in message
        official.fetch_wheel(force=True, quiet=True)
        official._distribution.cache_clear()
        assert official.distribution().kind == "wheel"
    finally:
        official._distribution.cache_clear()


def test_cli_reports_bad_input_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolenv.cli", "replay", "--categories", "nope"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown category 'nope'" in done.stderr


# -- issue #12, defect 4: API names in the task selection --------------------------------------

#: the short names the reports use (evaluators.scoring.API_NAMES), written out here rather than
#: imported so that a drift between the two tables fails this test
REPORT_NAMES = {
    "file_system": "GorillaFileSystem",
    "vehicle": "VehicleControlAPI",
    "trading": "TradingBot",
    "travel": "TravelAPI",
    "twitter": "TwitterAPI",
    "message": "MessageAPI",
    "ticket": "TicketAPI",
    "math": "MathAPI",
}


def test_apis_accept_the_reports_short_names_in_any_case() -> None:
    assert API_SHORT_NAMES == REPORT_NAMES and set(API_SHORT_NAMES.values()) == set(BACKEND_MODULES)
    by_class = select_tasks(apis=["TravelAPI"])
    assert by_class and all("TravelAPI" in t.involved_classes for t in by_class)
    for spelling in (["travel"], ["Travel"], ["TRAVEL"], ["travelapi"], "travel"):
        assert select_tasks(apis=spelling) == by_class, spelling
    both = select_tasks("base", apis=["math", "MessageAPI"])
    assert both and all({"MathAPI", "MessageAPI"} & set(t.involved_classes) for t in both)


@pytest.mark.parametrize("bad", ["flights", "travel_api", "", "GorillaFS"])
def test_an_unknown_api_is_a_one_line_error_listing_both_kinds_of_name(bad: str) -> None:
    with pytest.raises(DataError) as info:
        select_tasks(apis=[bad])
    message = str(info.value)
    assert "\n" not in message and f"unknown API {bad!r}" in message and "valid:" in message
    assert all(short in message for short in REPORT_NAMES) and all(cls in message for cls in BACKEND_MODULES)
    with pytest.raises(DataError):
        normalize_api(bad)


def test_an_empty_selection_names_the_filters_that_produced_it() -> None:
    with pytest.raises(DataError) as info:
        select_tasks("base", "test", apis=["math"], task_ids=["multi_turn_base_0"])  # 0 is a train index
    message = str(info.value)
    assert "\n" not in message and "the task selection is empty" in message
    assert all(
        part in message for part in ("categories=base", "split=test", "apis=MathAPI", "task_ids=multi_turn_base_0")
    )


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        ("5", "unknown task '5'; a task id looks like multi_turn_base_5"),
        ("base_5", "unknown task 'base_5'; a task id looks like multi_turn_base_5"),
        ("multi_turn_base_x", "a task id looks like multi_turn_base_5"),
        ("multi_turn_base_999", "no task with id 'multi_turn_base_999'; base holds multi_turn_base_0"),
    ],
)
def test_get_task_says_what_a_task_id_looks_like(task_id: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        get_task(task_id)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert get_task("multi_turn_miss_param_5").id == "multi_turn_miss_param_5"
