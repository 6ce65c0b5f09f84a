"""Curriculum tasks (trainers.study.curriculum, toolenv.curriculum): cut tasks a small model can
earn reward on, still checked by the binary checker, resolvable by id, and OOD-variable."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ood_variants  # noqa: F401  (registers the variant provider)
from toolenv.calls import parse_python_call
from toolenv.checker import check
from toolenv.curriculum import parse_curriculum_id
from toolenv.data import get_task
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions
from toolenv.registration import make_variant
from toolenv.selection import select_tasks
from trainers.sft import play_ground_truth
from trainers.study.curriculum import Curriculum, curriculum_tasks, train_part_tasks

CURRICULUM = Curriculum()
SPLITS = {s: curriculum_tasks(select_tasks(CURRICULUM.categories, s), CURRICULUM, 0) for s in ("train", "test")}
ALL = SPLITS["train"] + SPLITS["test"]
OOD = ("python_list_format", "rename_tools+rename_params+shuffle_schema")


def test_counts_meet_the_studys_need() -> None:
    assert len(SPLITS["train"]) == 55 and len(SPLITS["test"]) == 48  # >= 40 held out


@pytest.mark.parametrize("task", ALL, ids=lambda t: t.id)
def test_ground_truth_demonstration_scores_one_and_tool_list_is_compact(task) -> None:
    assert play_ground_truth(task).reward == 1.0
    names = [doc["name"] for doc in task.tool_docs()]
    assert len(names) <= CURRICULUM.max_tools and len(task.turns) == CURRICULUM.turns
    assert {call.name for turn in task.ground_truth_calls for call in turn} <= set(names)
    assert len(task.involved_classes) <= CURRICULUM.apis


@pytest.mark.parametrize("spec", OOD)
def test_oracle_scores_one_on_ood_variants_of_curriculum_tasks(spec: str) -> None:
    env = BFCLEnv(tasks=ALL, ood=spec, ood_seed=0)
    failures = []
    for task in ALL:
        env.reset(options={"task_id": task.id})
        assert env.task is not None and len(env.task.tool_docs()) == len(task.tool_docs())
        for action in expert_actions(env.task, env.codec):
            _, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        if reward != 1.0:
            failures.append((task.id, info.get("verdict")))
    assert not failures, failures[:3]


def test_a_wrong_call_scores_zero() -> None:
    task = ALL[0]
    right = [list(task.ground_truth_calls[0])]  # one step holding the turn's calls
    assert check(task, [right]).passed
    assert not check(task, [[]]).passed  # no call where one is expected
    wrong = [[call for call in right[0][:-1]] + [parse_python_call("pwd()" if right[0][-1].name != "pwd" else "ls()")]]
    assert not check(task, [wrong]).passed or right[0][-1].name in {"pwd", "ls"}


def test_ids_round_trip_in_this_and_a_fresh_process() -> None:
    for task in ALL[:10]:
        assert parse_curriculum_id(task.id) is not None and "@curriculum-t1-f6-s0_" in task.id
        assert get_task(task.id) == task
        variant = make_variant(task, OOD[1], 3)
        assert variant.id == task.id and make_variant(get_task(variant.id), OOD[1], 3) == variant
    code = (
        "import sys, toolenv.data as d, toolenv.registration as r;"
        f"t=d.get_task({ALL[0].id!r}); v=r.make_variant(t,{OOD[1]!r},3);"
        "print(t.to_json()); print(v.to_json())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [ALL[0].to_json(), make_variant(ALL[0], OOD[1], 3).to_json()]


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    tasks = select_tasks(["base"], "test")
    again = curriculum_tasks(tasks, CURRICULUM, 0)
    assert [t.to_json() for t in again] == [t.to_json() for t in SPLITS["test"] if t.category == "base"]
    other = curriculum_tasks(tasks, CURRICULUM, 1)
    assert [t.tool_docs() for t in other] != [t.tool_docs() for t in again]


def test_bad_values_are_one_line_errors() -> None:
    for bad in (
        {"turns": 0},
        {"max_tools": "6"},
        {"categories": ["miss_func"]},
        {"nope": 1},
        {"train_part": "cold"},
        {"warm_share": 0},
        {"warm_share": 1.0},
        {"warm_share": True},
    ):
        with pytest.raises(ValueError) as info:
            Curriculum.from_dict(bad)
        assert "\n" not in str(info.value)


def test_the_curriculum_study_recipes_train_and_evaluate_on_the_same_cut_tasks_for_every_seed() -> None:
    from trainers.study.cli import with_seed
    from trainers.study.config import load_study
    from trainers.study.run import eval_tasks

    root = Path(__file__).resolve().parents[1] / "recipes" / "study_smollm2_curriculum"
    pi0, rl = load_study(root / "pi0.toml"), load_study(root / "study.toml")
    assert pi0.curriculum is not None and rl.curriculum is not None
    assert replace(pi0.curriculum, train_part="all") == replace(rl.curriculum, train_part="all")
    assert (pi0.curriculum.train_part, rl.curriculum.train_part) == ("warm", "rl")
    pool = eval_tasks(rl)
    plain = [t for t in pool if not t.is_variant]
    assert len(plain) >= 40 and all("@curriculum-" in t.id for t in plain)
    assert len(pool) == 3 * len(plain)  # each task in distribution, format OOD, content OOD
    seeded = with_seed(rl, 2)
    assert seeded.out_dir.name == "seed-2" and seeded.config_for("vanilla_hot").run.seed == 2
    assert [t.id for t in eval_tasks(seeded)] == [t.id for t in pool]  # the seed never changes the tasks


def _first_questions(tasks) -> set[str]:
    return {repr(task.turns[0]) for task in tasks}


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0.01, 0.99), seed=st.integers(0, 2**16))
def test_the_warm_and_rl_parts_split_the_training_tasks_by_first_question(share: float, seed: int) -> None:
    tasks = SPLITS["train"]
    warm = train_part_tasks(tasks, Curriculum(train_part="warm", warm_share=share, seed=seed))
    rl = train_part_tasks(tasks, Curriculum(train_part="rl", warm_share=share, seed=seed))
    assert warm and rl  # each part keeps at least one first question
    assert sorted(t.id for t in warm + rl) == sorted(t.id for t in tasks)
    assert not _first_questions(warm) & _first_questions(rl)  # a base task and its miss_param twin stay together
    assert [t.id for t in warm] == [t.id for t in tasks if t in warm]  # in the tasks' order
    assert train_part_tasks(tasks, Curriculum(train_part="all", warm_share=share, seed=seed)) == tasks


def test_the_split_depends_on_the_curriculum_seed_only() -> None:
    warm = [t.id for t in train_part_tasks(SPLITS["train"], Curriculum(train_part="warm"))]
    assert warm == [t.id for t in train_part_tasks(list(SPLITS["train"]), Curriculum(train_part="warm"))]
    other = [t.id for t in train_part_tasks(SPLITS["train"], Curriculum(train_part="warm", seed=1))]
    assert other != warm
    assert len(_first_questions(SPLITS["train"])) == 35 and len(warm) == 28  # 18 of 35 first questions


def test_pi0_and_the_rl_labels_train_on_disjoint_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the study's own path: the tasks each shipped recipe hands to its method."""
    import trainers.supervision.run as method_run
    from trainers.study.config import load_study
    from trainers.study.run import train_label

    handed: list[list] = []
    monkeypatch.setattr(method_run, "run_method", lambda config, method, out, tasks, log: handed.append(tasks))
    root = Path(__file__).resolve().parents[1] / "recipes" / "study_smollm2_curriculum"
    train_label(load_study(root / "pi0.toml"), "sft", print)
    for label in ("vanilla", "ets_difflr"):
        train_label(load_study(root / "study.toml"), label, print)
    warm, rl, interleaved = handed
    assert interleaved == rl  # the interleaved SFT phases draw their demonstrations from these
    assert (len(warm), len(rl)) == (28, 27)
    assert not _first_questions(warm) & _first_questions(rl)
    assert sorted(t.id for t in warm + rl) == sorted(t.id for t in SPLITS["train"])
