"""The supervision methods' pure pieces: hints, reflections, ETS selection, OPS composition,
method configs and phase plans (no model involved)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import ChatServer
from toolenv.calls import Call
from toolenv.checker import check
from toolenv.data import Task, get_task, load_tasks
from toolenv.env import BFCLEnv
from toolenv.executor import keyword_call
from toolenv.formats import get_codec
from toolenv.selection import select_tasks
from toolenv.trajectory import Trajectory
from trainers.supervision import ets, hints, ops, prs, reflect, schedule

HERMES = get_codec("hermes")


def canonical_truth(task: Task) -> list[list[Any]]:
    return [[keyword_call(c, task.involved_classes) for c in turn] for turn in task.ground_truth_calls]


def play(task: Task, actions: list[str], call_format: str = "hermes") -> Trajectory:
    """Play assistant outputs in the real environment until it ends or they run out."""
    env = BFCLEnv(categories=[task.category], task_ids=[task.id], call_format=call_format)
    env.reset(options={"task_id": task.id})
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert env.trajectory is not None
    return env.trajectory


def turn_actions(task: Task) -> list[list[str]]:
    """The ground truth as assistant outputs per turn: one step with the turn's calls, a reply."""
    truth = canonical_truth(task)
    return [([HERMES.render_calls(calls)] if calls else []) + ["Done."] for calls in truth]


# -- hints ---------------------------------------------------------------------------------


def test_builtin_hint_carries_every_ground_truth_call_in_the_call_format() -> None:
    for task in select_tasks(["base", "miss_func", "miss_param"], split="train")[::7]:
        hint = hints.builtin_hint(task, HERMES)
        parsed = HERMES.parse(hint)
        assert list(parsed.calls) == [c for turn in canonical_truth(task) for c in turn], task.id
        assert hint.startswith(hints.HINT_PREFACE) and hint.endswith(hints.format_reminder(HERMES))
        assert [line.split(":")[0] for line in hint.splitlines() if line.startswith("Request ")] == [
            f"Request {t + 1}" for t in range(len(task.turns))
        ]


def test_builtin_hint_says_what_to_do_on_turns_without_calls() -> None:
    task = get_task("multi_turn_miss_param_3")
    hint = hints.builtin_hint(task, get_codec("python"))
    empty = [t for t, calls in enumerate(task.ground_truth) if not calls]
    assert empty and hint.count(hints.NO_CALL_ADVICE["miss_param"]) == len(empty)
    assert "[cd(folder='projects'), cd(folder='photography')," in hint
    func = get_task("multi_turn_miss_func_3")
    text = hints.builtin_hint(func, HERMES)
    revealed = func.held_out[0][1]
    assert f"new functions become available: {', '.join(revealed)}" in text
    assert hints.NO_CALL_ADVICE["miss_func"] in text


def test_insert_hint_edits_a_copy_of_the_system_message_only() -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    edited = hints.insert_hint(messages, "H")
    assert edited == [{"role": "system", "content": "S\n\nH"}, {"role": "user", "content": "U"}]
    assert messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert hints.insert_hint(messages[1:], "H") == [
        {"role": "system", "content": "H"},
        {"role": "user", "content": "U"},
    ]
    assert hints.insert_hint(messages, "H", "user")[-1] == {"role": "user", "content": "H"}
    with pytest.raises(ValueError, match="valid: system, user"):
        hints.insert_hint(messages, "H", "middle")


def test_hinted_samples_are_the_first_k() -> None:
    assert hints.hinted_samples(8, 2) == {0, 1}
    with pytest.raises(ValueError):
        hints.hinted_samples(4, 5)


def test_hint_book_writes_each_hint_once_and_persists(tmp_path: Any) -> None:
    calls: list[str] = []

    def writer(task: Task) -> str:
        calls.append(task.id)
        return f"hint for {task.id}"

    tasks = load_tasks("base")[:3]
    book = hints.HintBook(writer, tmp_path / "hints.json")
    book.prepare(tasks)
    book.prepare(tasks)
    assert calls == [t.id for t in tasks]
    again = hints.HintBook(lambda task: pytest.fail("the stored hint must be used"), tmp_path / "hints.json")
    assert again.get(tasks[1]) == f"hint for {tasks[1].id}"


def test_endpoint_hint_writer_sends_the_transcript_and_wraps_the_summary() -> None:
    task = get_task("multi_turn_base_3")
    with ChatServer(lambda body: "<think>long reasoning</think>\nUse find, then cd and cp.") as server:
        writer = hints.EndpointHintWriter(server.url, "judge-model", HERMES)
        hint = writer(task)
        (request,) = server.requests
    assert request["model"] == "judge-model" and request["temperature"] == 0.7
    transcript = request["messages"][1]["content"]
    assert "cp(source='test_image1.jpg',destination='backup_tests')" in transcript
    assert transcript.count("Question ") == len(task.turns)
    assert "<tool_call>" in request["messages"][0]["content"]  # the example is in the call format
    assert hint == "\n".join([hints.HINT_PREFACE, "", "Use find, then cd and cp.", "", hints.format_reminder(HERMES)])


def test_endpoint_hint_writer_refuses_an_empty_answer() -> None:
    from toolenv.inference import ModelError

    with ChatServer(lambda body: "<think>only thoughts</think>") as server:
        with pytest.raises(ModelError, match="empty hint"):
            hints.EndpointHintWriter(server.url, "m", HERMES)(get_task("multi_turn_base_3"))


# -- reflections ---------------------------------------------------------------------------


def test_reflection_on_a_passing_trajectory_says_so() -> None:
    task = get_task("multi_turn_base_3")
    trajectory = play(task, [a for turn in turn_actions(task) for a in turn])
    assert trajectory.reward == 1.0
    r = reflect.reflect(task, trajectory, HERMES)
    assert r.passed and r.failed_turn is None and "passed" in r.critique


def test_reflection_names_the_turn_the_call_and_the_argument() -> None:
    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    actions[1][0] = actions[1][0].replace('"destination": "backup_tests"', '"destination": "backup"', 1)
    r = reflect.reflect(task, play(task, [a for turn in actions for a in turn]), HERMES)
    assert (r.failure, r.failed_turn) == ("state_mismatch", 1)
    assert r.divergence == reflect.CallDivergence(
        2,
        "wrong_arguments",
        "cp(source='test_image1.jpg', destination='backup')",
        "cp(source='test_image1.jpg', destination='backup_tests')",
        ("destination",),
    )
    assert r.state_diff and r.state_diff[0]["class"] == "GorillaFileSystem"
    assert r.corrected == HERMES.render_calls(canonical_truth(task)[1])
    assert r.critique.startswith("Turn 2 failed") and r.critique.endswith(r.corrected)
    assert "Call 3 had wrong arguments (destination)" in r.critique
    assert reflect.Reflection.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_reflection_reports_a_missing_result_and_an_empty_turn() -> None:
    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    actions[0] = ["Done."]  # turn 1 needs find(...): nothing was called
    r = reflect.reflect(task, play(task, [a for turn in actions for a in turn]), HERMES)
    assert (r.failure, r.failed_turn, r.divergence.kind) == ("empty_turn", 0, "missing_call")
    assert "No call was made; the first needed call is find(path='.', name='test')" in r.critique


def test_reflection_records_calls_on_turns_that_needed_none() -> None:
    task = get_task("multi_turn_miss_param_3")
    actions = turn_actions(task)
    actions[1] = [HERMES.render_calls([Call("touch", (), {"file_name": "junk.txt"})]), "Done."]
    r = reflect.reflect(task, play(task, [a for turn in actions for a in turn]), HERMES)
    assert not r.passed and r.failed_turn == 2
    assert r.stray_calls == {1: ["touch(file_name='junk.txt')"]}
    assert "Turn 2 needed no call, yet these ran" in r.critique


def test_reflection_on_an_episode_that_stopped_early() -> None:
    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    r = reflect.reflect(task, play(task, actions[0] + actions[1][:1]), HERMES)  # stops inside turn 2
    assert not r.passed and r.failed_turn == 1 and r.stopped_early
    assert "stopped in this turn" in r.critique


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reflection_agrees_with_the_checker_on_mutated_ground_truths(data: st.DataObject) -> None:
    """Differential: the reflector's failing turn and failure kind are the checker's, and its
    divergence points at a call that really differs from the ground truth."""
    tasks = select_tasks(["base", "miss_param", "miss_func"], split="train")
    task = data.draw(st.sampled_from(tasks))
    truth = canonical_truth(task)
    turns = [list(calls) for calls in truth]
    with_calls = [t for t, calls in enumerate(turns) if calls]
    t = data.draw(st.sampled_from(with_calls))
    kind = data.draw(st.sampled_from(["drop", "swap_arg", "duplicate"]))
    i = data.draw(st.integers(0, len(turns[t]) - 1))
    if kind == "drop":
        del turns[t][i]
    elif kind == "duplicate":
        turns[t].insert(i, turns[t][i])
    else:
        call = turns[t][i]
        if not call.kwargs:
            return
        key = data.draw(st.sampled_from(sorted(call.kwargs)))
        turns[t][i] = type(call)(call.name, (), {**call.kwargs, key: "zz_mutated"})
    actions = [a for calls in turns for a in (([HERMES.render_calls(calls)] if calls else []) + ["Done."])]
    trajectory = play(task, actions)
    verdict = check(task, trajectory.model_turns())
    r = reflect.reflect(task, trajectory, HERMES)
    assert r.passed == verdict.passed
    if not verdict.passed:
        assert (r.failure, r.failed_turn) == (verdict.failure, verdict.failed_turn)
        if r.divergence is not None:
            d = r.divergence
            made = [c.to_python() for c in turns[r.failed_turn]]
            want = [c.to_python() for c in truth[r.failed_turn]]
            assert made[: d.index] == want[: d.index]
            assert (made[d.index] if d.index < len(made) else None) == d.got
            assert (want[d.index] if d.index < len(want) else None) == d.expected


def test_reflection_request_hides_the_ground_truth_unless_asked() -> None:
    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    actions[1] = ["Done."]
    trajectory = play(task, [a for turn in actions for a in turn])
    r = reflect.reflect(task, trajectory, HERMES)
    user, assistant = reflect.reflection_messages(task, trajectory, r, HERMES)
    assert user["role"] == "user" and assistant == {"role": "assistant", "content": r.critique}
    assert 'backup_tests"}' not in user["content"] and "Ground-truth" not in user["content"]
    assert user["content"].count("Turn ") == 2 and "Available tools: cat, cd, cp" in user["content"]
    shown = reflect.reflection_messages(task, trajectory, r, HERMES, show_ground_truth=True)[0]["content"]
    assert r.corrected in shown


def _judge_answer(body: dict[str, Any]) -> str:
    user = body["messages"][1]["content"]
    return (
        "<think>hm</think>Turn 2: the copy calls are missing."
        if "Answer in three parts" not in user
        else "Root cause: the agent replied instead of calling. Scenario 1: ..."
    )


def test_endpoint_judge_makes_call_a_then_call_b_on_the_failing_turn() -> None:
    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    actions[1] = ["Done."]
    trajectory = play(task, [a for turn in actions for a in turn])
    with ChatServer(_judge_answer) as server:
        whole, focused = prs.EndpointJudge(server.url, "judge", HERMES)(task, trajectory)
        first, second = (r["messages"][1]["content"] for r in server.requests)
    assert "Ground-truth calls" in first and "Checker findings" in first and "Turn 2 failed: no call" in first
    assert whole.source == "judge" and whole.kind == "trajectory" and whole.failed_turn == 1
    assert whole.critique == "Turn 2: the copy calls are missing."
    # call B: the requests up to the failing turn, its steps and its own ground truth, the findings
    assert focused.kind == "error_turn" and focused.failed_turn == 1 and focused.critique.startswith("Root cause")
    truth_turn_2 = reflect.render_calls(task, canonical_truth(task)[1], HERMES)
    assert "Turn 2 (failed)" in second and "Turn 3" not in second and truth_turn_2 in second
    assert "generalised scenarios" in second and "Checker findings" in second
    # its SFT conversation asks about the failing turn only, without the ground truth by default
    user, answer = reflect.reflection_messages(task, trajectory, focused, HERMES)
    assert "Turn 2 (failed)" in user["content"] and truth_turn_2 not in user["content"]
    assert answer == {"role": "assistant", "content": focused.critique}


def test_endpoint_judge_skips_call_b_when_nothing_failed_or_the_turn_was_unfinished() -> None:
    task = get_task("multi_turn_base_3")
    solved = play(task, [a for turn in turn_actions(task) for a in turn])
    looping = play(task, [HERMES.render_calls(canonical_truth(task)[0][:1])] * 40)
    assert reflect.reflect(task, looping, HERMES).failure == "force_terminated"
    with ChatServer(_judge_answer) as server:
        judge = prs.EndpointJudge(server.url, "judge", HERMES)
        assert [r.kind for r in judge(task, solved)] == ["trajectory"]
        assert [r.kind for r in judge(task, looping)] == ["trajectory"]
        off = prs.EndpointJudge(server.url, "judge", HERMES, error_turn=False)
        actions = turn_actions(task)
        actions[1] = ["Done."]
        assert [r.kind for r in off(task, play(task, [a for turn in actions for a in turn]))] == ["trajectory"]
        assert len(server.requests) == 3


def test_judge_reflections_are_kept_per_trajectory_and_reused_on_resume(tmp_path: Any) -> None:
    pytest.importorskip("torch")  # trainers.supervision.run imports the trainer
    from trainers.supervision.prs import build_reflections

    task = get_task("multi_turn_base_3")
    actions = turn_actions(task)
    actions[1] = ["Done."]
    trajectory = play(task, [a for turn in actions for a in turn])
    row = (
        ets.RolloutRecord(5, task.id, 1, 0.0, "policy", 0),
        {**trajectory.to_dict(), "task_id": task.id, "sample": 1, "reward": 0.0},
    )
    path = tmp_path / "reflections.jsonl"
    with ChatServer(_judge_answer) as server:
        method = schedule.method_from_dict(
            {"method": "prs", "reflector": "judge", "endpoint": server.url, "model": "j"}
        )
        records = build_reflections([row], {task.id: task}, method, "hermes", path)
        assert len(server.requests) == 2
        again = build_reflections([row], {task.id: task}, method, "hermes", path)
        assert len(server.requests) == 2  # resumed from the file, no new judge call
    assert [r["reflection"]["kind"] for r in records] == ["trajectory", "error_turn"]
    assert again == json.loads(json.dumps(records))
    assert [(r["step"], r["sample"]) for r in records] == [(5, 1), (5, 1)]
    assert records[1]["messages"][1]["content"].startswith("Root cause")


# -- ETS -------------------------------------------------------------------------------------


def R(step: int, task: str, sample: int, reward: float, source: str = "policy", group: int = 0) -> ets.RolloutRecord:
    return ets.RolloutRecord(step, task, sample, reward, source, group)


def test_ets_selects_any_failure_in_the_window_only() -> None:
    records = [
        R(40, "early", 0, 0.0),  # step 40 is outside (40, 50]
        R(41, "a", 0, 1.0),
        R(41, "a", 1, 0.0),
        R(45, "b", 0, 1.0),
        R(45, "b", 1, 1.0),
        R(50, "c", 0, 0.0, group=1),
        R(50, "c", 1, 0.0, group=1),
        R(50, "d", 0, 0.0, source="ground_truth"),  # experts never count
        R(51, "late", 0, 0.0),
    ]
    assert ets.erroneous_task_ids(records, last_step=50, window=10) == ["a", "c"]
    assert ets.erroneous_task_ids(records, last_step=50, window=10, rule="all") == ["c"]
    assert ets.erroneous_task_ids(records, last_step=51, window=1) == ["late"]
    with pytest.raises(ValueError, match="valid: any, all"):
        ets.erroneous_task_ids(records, 50, rule="most")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 30), st.sampled_from("abcdef"), st.integers(0, 3), st.sampled_from([0.0, 1.0])),
        max_size=60,
    ),
    st.integers(1, 30),
    st.integers(1, 12),
)
def test_ets_selection_matches_its_definition(rows: list, last: int, window: int) -> None:
    records = [R(step, task, sample, reward) for step, task, sample, reward in rows]
    chosen = ets.erroneous_task_ids(records, last, window)
    failed = {r.task_id for r in records if last - window < r.step <= last and r.reward == 0}
    assert set(chosen) == failed and len(chosen) == len(set(chosen))
    strict = ets.erroneous_task_ids(records, last, window, "all")
    assert set(strict) <= set(chosen)


# -- OPS composition -------------------------------------------------------------------------


def test_ops_replaces_the_first_k_and_keeps_a_policy_sample() -> None:
    assert ops.replaced_samples(8, 1) == {0}
    assert ops.replaced_samples(4, 3) == {0, 1, 2}
    for n, k in [(4, 4), (4, -1), (0, 0)]:
        with pytest.raises(ValueError):
            ops.replaced_samples(n, k)


def test_ground_truth_script_is_the_demonstration_and_scores_one() -> None:
    task = get_task("multi_turn_miss_func_3")
    script = ops.ground_truth_script(task, "hermes")
    # one call per message, each turn closed by a reply
    calls = sum(len(turn) for turn in task.ground_truth)
    assert len(script) == calls + len(task.turns)
    assert play(task, script).reward == 1.0
    hook = ops.ScriptHook(script)

    class Ctx:
        message_index = 0

    ctx = Ctx()
    assert hook(ctx) == script[0]
    ctx.message_index = len(script)
    assert hook(ctx) is None


# -- method configs ------------------------------------------------------------------------


def test_methods_and_presets_parse_and_plan() -> None:
    budget = 300
    for name in schedule.method_names():
        method = schedule.method_from_dict(name)
        plan = schedule.phase_plan(method, budget)
        assert sum(p.steps for p in plan if p.kind == "rl") == (0 if name == "sft" else budget)
        assert schedule.method_from_dict(method.to_dict()) == method
    ets_plan = schedule.phase_plan(schedule.method_from_dict("ets"), budget)
    assert [(p.kind, p.steps or p.epochs) for p in ets_plan] == [
        ("rl", 50),
        ("sft", 2),
        ("rl", 100),
        ("sft", 2),
        ("rl", 150),
    ]
    assert [p.window for p in ets_plan if p.kind == "rl"] == [10, 10, 0]
    assert [p.fresh_reference for p in ets_plan if p.kind == "rl"] == [False, True, True]
    assert [p.first_step for p in ets_plan if p.kind == "rl"] == [1, 51, 151]  # one run's stream
    restart = schedule.method_from_dict({"method": "ets", "prompt_stream": "restart"})
    assert [p.first_step for p in schedule.phase_plan(restart, budget) if p.kind == "rl"] == [1, 1, 1]
    with pytest.raises(ValueError, match="prompt_stream"):
        schedule.method_from_dict({"method": "ets", "prompt_stream": "again"})
    assert schedule.method_from_dict("ets").sft_lr == 1e-6 and schedule.method_from_dict("ets_difflr").sft_lr == 1e-5
    assert {p.data for p in schedule.phase_plan(schedule.method_from_dict("prs"), budget) if p.kind == "sft"} == {
        "failed_demos+reflections"
    }
    sft_rl = schedule.phase_plan(schedule.method_from_dict("sft_rl"), budget)
    assert [(p.kind, p.data, p.lr) for p in sft_rl] == [("sft", "demos", 1e-5), ("rl", "", None)]
    # SFT only: the same SFT phase as sft_rl's, and nothing after it
    assert schedule.phase_plan(schedule.method_from_dict("sft"), budget) == sft_rl[:1]


@pytest.mark.parametrize(
    "table, message",
    [
        ("nope", "unknown method 'nope'; valid: vanilla, sft, sft_rl"),
        ({"method": "ops", "k": 2}, "unknown key(s) for method ops: k; valid: replace"),
        ({"method": "ops", "replace": 0}, "at least 1"),
        ({"method": "hbg", "source": "endpoint"}, "needs endpoint"),
        ({"method": "prs", "reflector": "oracle"}, "valid: builtin, judge"),
        ({"method": "ets", "phases": [50, 0]}, "positive step counts"),
        ({"replace": 1}, "needs 'method'"),
    ],
)
def test_method_errors_are_one_line(table: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        schedule.method_from_dict(table)
    assert "\n" not in str(info.value)
