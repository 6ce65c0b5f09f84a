"""The Gymnasium environments: check_env, oracle reward 1.0 on every task in every format,
random and hostile actions never crash, vector envs equal serial runs."""

from __future__ import annotations

import json
import random

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolenv  # noqa: F401  (registers the ids)
from tests.test_hostile import REFUSED
from toolenv.data import get_task, load_tasks
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions
from toolenv.formats import CODECS, get_codec
from toolenv.registration import ENV_IDS
from toolenv.selection import paper_split


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_check_env_passes_for_every_registered_id(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_make_with_module_prefix_and_kwargs() -> None:
    env = gym.make("toolenv:BFCL-Travel-v0", categories=["base"], split="test", call_format="python")
    assert all("TravelAPI" in t.involved_classes for t in env.unwrapped.tasks)
    assert {t.index for t in env.unwrapped.tasks} <= set(paper_split()[1])
    json.dumps(env.spec.kwargs)  # registered kwargs stay JSON-serialisable


def run_episode(env: BFCLEnv, task_id: str, actions: list) -> tuple[float, bool, bool, list[dict]]:
    env.reset(options={"task_id": task_id})
    infos = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return reward, terminated, truncated, infos
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize("call_format", list(CODECS))
def test_oracle_scores_one_on_all_800_tasks(call_format: str) -> None:
    env = BFCLEnv(call_format=call_format)
    codec = get_codec(call_format)
    failures = []
    for task in load_tasks():
        reward, terminated, truncated, infos = run_episode(env, task.id, expert_actions(task, codec))
        if not (reward == 1.0 and terminated and not truncated):
            failures.append((task.id, infos[-1].get("verdict")))
        assert all(i["structure"] in ("healthy_call", "healthy_response") for i in infos)
    assert not failures, failures[:3]


def test_messages_mode_and_reveal_turn() -> None:
    env = BFCLEnv(categories=["miss_func"], call_format="openai", observation_mode="messages")
    task = get_task("multi_turn_miss_func_0")
    ((reveal_turn, names),) = task.held_out
    obs, info = env.reset(options={"task_id": task.id})
    assert [m["role"] for m in obs] == ["system", "user"]
    assert all(name not in json.dumps(info["tools"]) for name in names)
    actions = expert_actions(task, env.codec)
    seen = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        seen.append(obs)
        if terminated:
            break
    assert reward == 1.0
    reveal = [
        o for o in seen if o and o[0]["role"] == "user" and "I have updated some more functions" in o[0]["content"]
    ]
    assert len(reveal) == 1 and all(name in reveal[0][0]["content"] for name in names)
    tool_messages = [m for o in seen for m in o if m["role"] == "tool"]
    assert tool_messages and all(m["tool_call_id"].startswith("call_") for m in tool_messages)


def test_step_limit_force_quits_like_bfcl() -> None:
    env = BFCLEnv(categories=["base"], call_format="python", max_steps_per_turn=3)
    env.reset(options={"task_id": "multi_turn_base_0"})
    outcomes = [env.step("[pwd()]")[2:4] for _ in range(4)]
    assert outcomes[:3] == [(False, False)] * 3 and outcomes[3] == (False, True)
    assert env.trajectory.truncated and env.trajectory.reward == 0.0


def test_turn_verdicts_are_reported_when_turns_close() -> None:
    env = BFCLEnv(categories=["base"], call_format="hermes")
    env.reset(options={"task_id": "multi_turn_base_0"})
    _, _, _, _, info = env.step("I will not do anything.")
    assert info["turn_verdict"]["failure"] == "empty_turn"
    assert info["structure"] == "healthy_response"


@given(
    actions=st.lists(st.one_of(st.text(max_size=200), st.sampled_from(REFUSED[:40])), min_size=1, max_size=30),
    fmt=st.sampled_from(list(CODECS)),
    index=st.integers(0, 799),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_and_hostile_actions_never_crash(actions: list[str], fmt: str, index: int) -> None:
    env = BFCLEnv(call_format=fmt, max_steps_per_turn=5)
    obs, _ = env.reset(options={"index": index})
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        json.dumps(info)
        if terminated or truncated:
            assert reward in (0.0, 1.0)
            break


def _scripted(task_id: str, codec, rng: random.Random) -> list:
    """The oracle's actions with some noise, so that rewards differ between episodes."""
    actions = expert_actions(get_task(task_id), codec)
    if rng.random() < 0.3:
        actions.insert(rng.randrange(len(actions)), "Nothing to call.")  # closes a turn too early
    return actions


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_equals_serial_runs(mode: str) -> None:
    num_envs, episodes_wanted = 4, 200 if mode == "async" else 40
    envs = gym.make_vec(
        "BFCL-MultiTurn-v0",
        num_envs=num_envs,
        vectorization_mode=mode,
        vector_kwargs={"shared_memory": False} if mode == "async" else {},
        call_format="python",
        categories=["base", "miss_param"],
    )
    codec = get_codec("python")
    rng = random.Random(7)
    _, infos = envs.reset(seed=[11, 12, 13, 14])
    scripts = [_scripted(infos["task_id"][i], codec, rng) for i in range(num_envs)]
    played = [[] for _ in range(num_envs)]
    episodes: list[tuple[str, tuple, float]] = []
    needs_reset = [False] * num_envs
    while len(episodes) < episodes_wanted:
        actions = []
        for i in range(num_envs):
            action = "" if needs_reset[i] else scripts[i][len(played[i])]
            actions.append(action)
        _, rewards, terms, truncs, infos = envs.step(actions)
        for i in range(num_envs):
            if needs_reset[i]:  # NEXT_STEP autoreset: this step reset env i and ignored its action
                scripts[i] = _scripted(infos["task_id"][i], codec, rng)
                played[i] = []
                needs_reset[i] = False
                continue
            played[i].append(actions[i])
            if terms[i] or truncs[i]:
                episodes.append((infos["task_id"][i], tuple(played[i]), float(rewards[i])))
                needs_reset[i] = True
    envs.close()
    serial = BFCLEnv(call_format="python", categories=["base", "miss_param"])
    for task_id, actions, reward in episodes:
        assert run_episode(serial, task_id, list(actions))[0] == reward
    assert 0 < sum(r for *_, r in episodes) < len(episodes)
