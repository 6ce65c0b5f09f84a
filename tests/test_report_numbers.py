"""The numbers a report prints: per-API counts, duplicate episodes, the round trip through the
official result format (in distribution and OOD), the structural states of re-imported steps,
empty input, and what the HTML page shows (headline, expected calls, state difference, variants)."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pytest

from evaluators.interop import (
    OOD_MANIFEST,
    InteropError,
    read_bfcl_results,
    step_structure,
    trajectory_from_bfcl,
    write_bfcl_results,
)
from evaluators.report import html_page, report_dict, write_reports
from evaluators.runner import RunConfig, episode_tasks, run_eval, run_meta, score_and_report
from evaluators.scoring import API_NAMES, TaskScore, score_trajectory, summarize, trajectory_task, unique_episodes
from tests.test_ood_eval import VariantOracle
from toolenv.checker import Verdict
from toolenv.data import get_task, load_tasks
from toolenv.trajectory import Trajectory

SPECS = ("rename_tools", "perturb_values+python_list_format")


class HalfFailingOracle(VariantOracle):
    """The oracle of every episode, except that tasks with an odd index get a plain reply, so
    each group (in distribution and each variant) has passes and failures."""

    def next_action(self, messages: Sequence[dict[str, Any]]) -> Any:
        task, _ = self.by_opening[json.dumps([{"role": m["role"], "content": m["content"]} for m in messages[:2]])]
        return "I cannot help with that." if task.index % 2 else super().next_action(messages)


def _score(task_id: str, involved: tuple[str, ...], primary: str, passed: bool) -> TaskScore:
    return TaskScore(task_id, "base", primary, involved, 1, Verdict(task_id, passed))


def _summaries(trajectories: Sequence[Trajectory]) -> dict[tuple[str, int], dict[str, Any]]:
    """One summary per (variant spec, seed), scored from scratch."""
    groups: dict[tuple[str, int], list[Trajectory]] = {}
    for trajectory in trajectories:
        spec = str(trajectory.meta.get("ood") or "")
        groups.setdefault((spec, int(trajectory.meta.get("ood_seed", 0)) if spec else 0), []).append(trajectory)
    return {
        key: summarize([score_trajectory(t) for t in group], group).to_dict() for key, group in sorted(groups.items())
    }


# -- 1. per-API accuracy -----------------------------------------------------------------------


def test_a_task_counts_once_under_each_api_it_involves() -> None:
    scores = [
        _score("multi_turn_base_1", ("MessageAPI", "TradingBot"), "TradingBot", True),
        _score("multi_turn_base_2", ("TradingBot",), "TradingBot", False),
    ]
    by_api = summarize(scores).by_api
    assert by_api["trading"] == {"accuracy": 0.5, "correct": 1, "total": 2}
    assert by_api["message"] == {"accuracy": 1.0, "correct": 1, "total": 1}


def test_per_api_totals_equal_the_tasks_involving_each_api_over_all_800() -> None:
    tasks = load_tasks()
    assert len(tasks) == 800
    scores = [_score(t.id, t.involved_classes, t.primary_class, t.index % 3 == 0) for t in tasks]
    by_api = summarize(scores).by_api
    involving = Counter(API_NAMES[cls] for t in tasks for cls in set(t.involved_classes))
    passing = Counter(API_NAMES[cls] for t in tasks if t.index % 3 == 0 for cls in set(t.involved_classes))
    assert {api: row["total"] for api, row in by_api.items()} == dict(involving)
    assert {api: row["correct"] for api, row in by_api.items()} == {api: passing[api] for api in involving}
    assert set(by_api) == set(API_NAMES.values())


# -- 2. duplicates and the OOD round trip ------------------------------------------------------


def _trajectory(task_id: str, tag: str, **meta: Any) -> Trajectory:
    return Trajectory(task_id, "base", "v", "hermes", meta={"tag": tag, **meta})


def test_unique_episodes_keeps_the_last_of_each_in_first_seen_order() -> None:
    items = [
        _trajectory("multi_turn_base_1", "a1"),
        _trajectory("multi_turn_base_2", "b"),
        _trajectory("multi_turn_base_1", "x1", ood="rename_tools", ood_seed=1),
        _trajectory("multi_turn_base_1", "x2", ood="rename_tools", ood_seed=2),  # another seed: another episode
        _trajectory("multi_turn_base_1", "a2"),
        _trajectory("multi_turn_base_1", "x1b", ood="rename_tools", ood_seed=1),
    ]
    kept, dropped = unique_episodes(items)
    assert [t.meta["tag"] for t in kept] == ["a2", "b", "x1b", "x2"] and dropped == 2
    assert unique_episodes([]) == ([], 0)


def test_scoring_twice_and_exporting_and_reimporting_give_identical_summaries(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=4, batch_size=4, ood=SPECS, ood_seed=1)
    run = tmp_path / "run"
    trajectories = run_eval(HalfFailingOracle(episode_tasks(config)), config, run, progress=False)
    assert len(trajectories) == 4 * (1 + len(SPECS))
    direct = _summaries(trajectories)
    assert _summaries(trajectories) == direct
    assert set(direct) == {("", 0), *((spec, 1) for spec in SPECS)}
    assert all(s["tasks"] == 4 and s["overall"] == 0.5 for s in direct.values())

    files = write_bfcl_results(trajectories, tmp_path / "bfcl")
    back = list(read_bfcl_results([tmp_path / "bfcl"]))
    assert len(back) == len(trajectories)
    assert _summaries(back) == direct  # structural states included
    # the in-distribution file is exactly the export of the in-distribution trajectories alone
    alone = write_bfcl_results([t for t in trajectories if not t.meta.get("ood")], tmp_path / "alone")
    top = tmp_path / "bfcl" / "BFCL_v4_multi_turn_base_result.json"
    assert top in files and top.read_bytes() == alone[0].read_bytes()
    assert len(top.read_text().splitlines()) == 4
    manifests = [json.loads(f.read_text()) for f in files if f.name == OOD_MANIFEST]
    assert sorted((m["spec"], m["seed"]) for m in manifests) == sorted((spec, 1) for spec in SPECS)

    # the reports agree too: the run folder scored directly, and the re-imported results
    report = json.loads(score_and_report(run, trajectories, run_meta(run))["json"].read_text())
    (tmp_path / "scored").mkdir()
    again = json.loads(score_and_report(tmp_path / "scored", back, run_meta(run))["json"].read_text())
    assert again["summary"] == report["summary"] and again["ood"] == report["ood"] and again["tasks"] == report["tasks"]


def test_a_variant_folder_is_known_by_its_manifest(tmp_path: Path) -> None:
    """The manifest is what marks a folder as a variant; a malformed one is a one-line error."""
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "BFCL_v4_multi_turn_base_result.json").write_text(
        json.dumps({"id": "multi_turn_base_0", "result": [[]]}) + "\n"
    )
    (folder / OOD_MANIFEST).write_text("{not json")
    with pytest.raises(InteropError, match=OOD_MANIFEST) as error:
        list(read_bfcl_results([folder]))
    assert "\n" not in str(error.value)
    (folder / OOD_MANIFEST).write_text(json.dumps({"spec": "rename_tools", "seed": 4}))
    (trajectory,) = read_bfcl_results([folder])
    assert trajectory.meta["ood"] == "rename_tools" and trajectory.meta["ood_seed"] == 4


# -- 3. structural states of re-imported steps -------------------------------------------------


@pytest.mark.parametrize(
    "raw, state",
    [
        ("[cd(folder='document')]", "healthy_call"),
        ("The file is sorted.", "healthy_response"),
        ("[cd(folder='document')]<|im_end|>", "text_pollution"),
        ("", "full_collapse"),
        ([{"cd": '{"folder": "document"}'}], "healthy_call"),
        ([{"cd": '{"folder": "document"}'}, "not a call"], "text_pollution"),
        ([], "full_collapse"),
    ],
)
def test_reimported_steps_are_classified(raw: Any, state: str) -> None:
    record = {"id": "multi_turn_base_0", "result": [[raw]]}
    (turn,) = trajectory_from_bfcl(record).turns
    assert turn.steps[0].structure == state == step_structure(raw, turn.steps[0].calls)


def test_reimported_results_report_their_structural_states(tmp_path: Path) -> None:
    task = get_task("multi_turn_base_0")
    turns = [[f"[{', '.join(calls)}]", "Done."] for calls in task.ground_truth]
    path = tmp_path / "BFCL_v4_multi_turn_base_result.json"
    path.write_text(json.dumps({"id": task.id, "result": turns}) + "\n")
    trajectories = list(read_bfcl_results([path]))
    summary = summarize([score_trajectory(t) for t in trajectories], trajectories)
    assert summary.messages == 2 * len(task.ground_truth)
    assert summary.structure["healthy_call"] == summary.structure["healthy_response"] == 0.5


# -- 4. empty input ----------------------------------------------------------------------------


def test_result_files_without_multi_turn_records_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "BFCL_v4_simple_python_result.json"
    path.write_text(json.dumps({"id": "simple_python_0", "result": "[f()]"}) + "\n")
    for source in (path, tmp_path):
        with pytest.raises(InteropError, match="no multi-turn records") as error:
            list(read_bfcl_results([source]))
        assert str(source) in str(error.value) and "\n" not in str(error.value)


def test_exporting_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InteropError, match="nothing to export: runs/empty holds no trajectories"):
        write_bfcl_results([], tmp_path / "out", source="runs/empty")
    assert not (tmp_path / "out").exists()


# -- 5. the HTML page --------------------------------------------------------------------------


def test_html_leads_with_the_scores_and_shows_expected_calls_state_difference_and_variants(tmp_path: Path) -> None:
    task = get_task("multi_turn_base_0")
    turns = [[f"[{', '.join(calls)}]", "Done."] for calls in task.ground_truth]
    turns[0][0] = "[cd(folder='document'), mkdir(dir_name='elsewhere')]"  # a wrong state after turn 0
    official = trajectory_from_bfcl({"id": task.id, "result": turns})
    variant = trajectory_from_bfcl({"id": task.id, "result": [["I cannot help with that."]] * len(task.ground_truth)})
    variant.meta.update(ood="rename_tools", ood_seed=2)
    base_score, variant_score = score_trajectory(official), score_trajectory(variant)
    official.verdict, variant.verdict = base_score.verdict.to_dict(), variant_score.verdict.to_dict()
    assert base_score.verdict.failure == "state_mismatch" and variant_score.ood == "rename_tools"
    report = report_dict(summarize([base_score], [official]), [base_score], {"model": {"name": "m"}}, [variant_score])
    assert report["variant_tasks"][0]["ood"] == "rename_tools" and "ood" not in report["tasks"][0]
    page = write_reports(tmp_path, report, [official], [variant])["html"].read_text()
    headline = page.index('id="headline"')
    assert headline < page.index("<h2>Plots") and headline < page.index("<table>")
    assert 'id="score-overall"><div class="value">0.00%' in page and 'id="score-base"' in page
    for call in task.ground_truth[1]:  # the expected calls of a turn the model did play
        assert html.escape(call) in page
    diff = base_score.verdict.turns[0].state_diff[0]
    assert f"{diff.class_name}.{diff.attribute}" in page and "state difference" in page
    assert page.count('<details class="vtask') == 1 and "OOD <code>rename_tools</code>, seed 2: 0/1 passed" in page
    renamed = _variant_truth(variant)
    assert html.escape(renamed) in page  # the variant's own expected calls
    # without report rows the variant view falls back on the verdicts the trajectories carry
    assert html_page({**report, "variant_tasks": []}, [official], [variant]).count('<details class="vtask') == 1


def _variant_truth(trajectory: Trajectory) -> str:
    """The variant's first expected call, checked to differ from the official one."""
    truth = trajectory_task(trajectory).ground_truth[0][0]
    assert truth not in get_task(trajectory.task_id).ground_truth[0]  # renamed: really the variant's
    return truth
