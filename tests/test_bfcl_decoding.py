"""The python call format and prompting result files decode as BFCL does (issue #14, item 1):
positional arguments are dropped by default, counted, and kept only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

from evaluators.interop import read_bfcl_results, trajectory_from_bfcl
from evaluators.scoring import score_trajectory, summarize
from toolenv.calls import Call
from toolenv.data import get_task
from toolenv.env import BFCLEnv
from toolenv.formats.bfcl_decode import decode_function_calling


def _play(action: str, **kwargs: object) -> dict:
    env = BFCLEnv(call_format="python", task_ids=["multi_turn_base_31"], categories=["base"], **kwargs)
    env.reset(options={"task_id": "multi_turn_base_31"})
    _, _, _, _, info = env.step(action)
    return info


def test_the_env_drops_positional_arguments_as_bfcl_does_and_counts_them() -> None:
    info = _play("[cd('document')]")
    assert info["calls"] == [Call("cd", (), {}).to_dict()]
    assert info["parse"]["positional_dropped"] == 1
    kept = _play("[cd('document')]", keep_positional=True)
    assert kept["calls"] == [Call("cd", ("document",), {}).to_dict()]
    assert "positional_dropped" not in kept["parse"]
    assert kept["results"] != info["results"]  # cd() and cd('document') do different things


def test_a_verbatim_positional_ground_truth_is_scored_as_bfcl_scores_it() -> None:
    """multi_turn_base_31's second turn holds ``cd('Reports')`` and ``mean([37])``: written
    verbatim, BFCL runs ``cd()`` and ``mean()`` and the entry fails; with keep_positional it
    passes. The report counts every call that lost its positional arguments."""
    task = get_task("multi_turn_base_31")
    record = {"id": task.id, "result": [["[" + ", ".join(turn) + "]"] if turn else [] for turn in task.ground_truth]}
    default = trajectory_from_bfcl(record)
    kept = trajectory_from_bfcl(record, keep_positional=True)
    assert not score_trajectory(default).verdict.passed
    assert score_trajectory(kept).verdict.passed
    summary = summarize([score_trajectory(default)], [default])
    positional = sum(bool(call.args) for turn in task.ground_truth_calls for call in turn)
    assert positional == 2 and summary.positional_dropped == {"calls": positional, "tasks": 1}


def test_keep_positional_reaches_result_files(tmp_path: Path) -> None:
    task = get_task("multi_turn_base_31")
    record = {"id": task.id, "result": [["[" + ", ".join(turn) + "]"] if turn else [] for turn in task.ground_truth]}
    path = tmp_path / "BFCL_v4_multi_turn_base_result.json"
    path.write_text(json.dumps(record) + "\n")
    (default,) = read_bfcl_results([path])
    (kept,) = read_bfcl_results([path], keep_positional=True)
    assert [score_trajectory(t).verdict.passed for t in (default, kept)] == [False, True]


def test_function_calling_steps_decode_as_bfclss_converter() -> None:
    decoded = decode_function_calling(
        [{"cd": {"folder": "a"}, "ls": "{}"}, {"mv": '{"source": "x", "destination": "y"}'}]
    )
    assert decoded.strings == ("cd(folder='a')", "ls()", "mv(source='x',destination='y')")
    calls, unrunnable = decoded.calls()
    assert calls == [Call("cd", (), {"folder": "a"}), Call("ls"), Call("mv", (), {"source": "x", "destination": "y"})]
    assert unrunnable == []


def test_per_turn_credit_counts_the_turns_passed_before_the_first_failure() -> None:
    """Issue #14 item 4: beside BFCL's 0/1, the turns passed before the first failing turn."""
    task = get_task("multi_turn_base_31")
    truth = [["[" + ", ".join(turn) + "]"] if turn else [] for turn in task.ground_truth]
    whole = trajectory_from_bfcl({"id": task.id, "result": truth}, keep_positional=True)
    assert score_trajectory(whole).turns_passed == len(task.turns) and score_trajectory(whole).turn_credit == 1.0
    broken = trajectory_from_bfcl({"id": task.id, "result": truth})  # turn 1 loses cd('Reports')
    score = score_trajectory(broken)
    assert not score.verdict.passed and score.turns_passed == score.verdict.failed_turn == 1
    short = trajectory_from_bfcl({"id": task.id, "result": truth[:1]}, keep_positional=True)
    cut = score_trajectory(short)  # force-terminated: BFCL's 0, but its one turn was played right
    assert cut.verdict.failure == "force_terminated" and cut.turns_passed == 1
    summary = summarize([score, cut], [broken, short])
    assert len(task.turns) == 2 and summary.categories["base"]["turn_credit"] == summary.turn_credit == 0.5
