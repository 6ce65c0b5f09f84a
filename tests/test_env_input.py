"""What ``BFCLEnv`` accepts and documents (issue #12): OpenAI-style message dicts as actions in
every call format, a class docstring that documents every argument and ``info`` key an episode
emits, and API short names in ``apis``."""

from __future__ import annotations

import copy
import inspect
import json
import re
from typing import Any

import gymnasium as gym
import pytest

import toolenv  # noqa: F401  (registers the ids)
from envs._official import DataError
from toolenv.calls import Call
from toolenv.data import get_task
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions
from toolenv.formats import CODECS, get_codec

TASK = "multi_turn_base_0"


def tool_calls_message(*calls: tuple[str, Any], content: str | None = None) -> dict[str, Any]:
    """An assistant message as an OpenAI-compatible server returns it (arguments as JSON text)."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": f"call_{name}_{index}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
            for index, (name, arguments) in enumerate(calls)
        ],
        "reasoning_content": "list the folder first",  # an extra field a server may add
    }


def _openai_step(env: BFCLEnv, action: Any) -> dict[str, Any]:
    """What the openai format makes of the same action on the same task (the reference)."""
    reference = BFCLEnv(call_format="openai")
    reference.reset(options={"task_id": env.task.id})
    return reference.step(action)[4]


# -- defect 1: message dicts in every format -------------------------------------------------------


@pytest.mark.parametrize("call_format", list(CODECS))
def test_a_tool_calls_dict_runs_its_calls_in_every_format(call_format: str) -> None:
    env = BFCLEnv(call_format=call_format)
    env.reset(options={"task_id": TASK})
    action = tool_calls_message(("cd", {"folder": "document"}), ("ls", {}))
    _, reward, terminated, truncated, info = env.step(action)
    assert info["parse"]["status"] == "calls" and info["structure"] == "healthy_call"
    assert [call["name"] for call in info["calls"]] == ["cd", "ls"]
    assert info["step"] == 1 and not terminated and not truncated and reward == 0.0
    reference = _openai_step(env, action)
    assert (info["calls"], info["results"], info["parse"]) == (
        reference["calls"],
        reference["results"],
        reference["parse"],
    )
    assert "turn_verdict" not in info  # a tool step: the user turn goes on


@pytest.mark.parametrize("call_format", list(CODECS))
def test_dict_actions_play_a_whole_episode_to_reward_one_in_every_format(call_format: str) -> None:
    env = BFCLEnv(call_format=call_format)
    for task_id in ("multi_turn_base_0", "multi_turn_miss_func_3", "multi_turn_long_context_60"):
        env.reset(options={"task_id": task_id})
        # the oracle's calls as the openai codec renders them (dicts), replies as dicts too
        actions = expert_actions(env.task, get_codec("openai"))
        actions = [a if isinstance(a, dict) else {"role": "assistant", "content": a} for a in actions]
        for action in actions:
            _, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated and reward == 1.0, (task_id, info.get("verdict"))


@pytest.mark.parametrize("call_format", list(CODECS))
@pytest.mark.parametrize(
    "tool_calls",
    [
        "cd(folder='document')",
        [{"id": "x", "type": "function", "function": {"arguments": "{}"}}],
        [{"id": "x", "type": "function", "function": {"name": "cd", "arguments": "{not json"}}],
        [{"id": "x", "type": "function", "function": {"name": "cd", "arguments": "[1]"}}],
        [None, 3, "ls"],
    ],
    ids=["not-a-list", "no-name", "arguments-not-json", "arguments-not-object", "entries-not-objects"],
)
def test_malformed_tool_calls_come_back_as_error_results_in_every_format(call_format: str, tool_calls: Any) -> None:
    env = BFCLEnv(call_format=call_format, observation_mode="messages")
    env.reset(options={"task_id": TASK})
    obs, reward, terminated, truncated, info = env.step(
        {"role": "assistant", "content": None, "tool_calls": tool_calls}
    )
    assert info["parse"]["status"] == "invalid" and info["parse"]["errors"] and info["calls"] == []
    assert info["structure"] == "text_pollution"
    assert obs and all("could not be decoded" in m["content"] for m in obs) and env.observation_space.contains(obs)
    assert not terminated and not truncated and reward == 0.0
    json.dumps(info)


@pytest.mark.parametrize("call_format", list(CODECS))
def test_the_trajectory_records_a_dict_action_as_it_was_sent(call_format: str) -> None:
    env = BFCLEnv(call_format=call_format)
    env.reset(options={"task_id": TASK})
    action = tool_calls_message(("ls", {}), content="Let me look.")
    sent = copy.deepcopy(action)
    env.step(action)
    action["tool_calls"].append({"id": "late", "function": {"name": "rm", "arguments": "{}"}})  # caller reuses it
    action["content"] = "changed"
    assert env.trajectory.messages[-2] == sent  # [-1] is the tool result
    assert env.trajectory.turns[-1].steps[-1].raw == sent
    reply = {"role": "assistant", "content": "Done."}
    env.step(reply)
    assert env.trajectory.turns[0].steps[-1].raw == reply
    assert (
        reply in env.trajectory.messages
        and {"role": "assistant", "content": "Done.", "tool_calls": None} not in env.trajectory.messages
    )
    json.dumps(env.trajectory.to_dict())


@pytest.mark.parametrize("call_format", list(CODECS))
def test_a_dict_without_tool_calls_is_its_content(call_format: str) -> None:
    env = BFCLEnv(call_format=call_format)
    env.reset(options={"task_id": TASK})
    _, _, _, _, info = env.step({"role": "assistant", "content": "I have done it."})
    assert info["parse"]["status"] == "text" and info["structure"] == "healthy_response" and "turn_verdict" in info
    if call_format != "openai":  # a server without a tool parser returns the format's text in content
        text = get_codec(call_format).render_calls([Call("ls")])
        _, _, _, _, info = env.step({"role": "assistant", "content": text, "tool_calls": None})
        assert info["parse"]["status"] == "calls" and [c["name"] for c in info["calls"]] == ["ls"]


# -- defect 2: help(env.unwrapped) documents everything ----------------------------------------------


def _emitted_info_keys() -> set[str]:
    """Every info key the env emits over oracle episodes (plain and OOD; tool steps, replies, ends)."""
    keys: set[str] = set()
    for kwargs in ({}, {"ood": "shuffle_schema", "ood_seed": 1}):
        env = BFCLEnv(**kwargs)
        for task_id in ("multi_turn_base_0", "multi_turn_miss_func_3"):
            _, info = env.reset(options={"task_id": task_id})
            keys |= set(info)
            for action in expert_actions(env.task, env.codec):
                keys |= set(env.step(action)[4])
    truncating = BFCLEnv(max_steps_per_turn=1)
    truncating.reset(options={"task_id": TASK})
    for _ in range(2):
        *_, info = truncating.step('<tool_call>{"name": "pwd", "arguments": {}}</tool_call>')
        keys |= set(info)
    assert truncating.trajectory.truncated
    return keys


def test_the_class_docstring_documents_every_argument_info_key_and_attribute() -> None:
    env = gym.make("BFCL-MultiTurn-v0")
    doc = inspect.getdoc(type(env.unwrapped)) or ""
    documented = set(re.findall(r"``(\w+)``", doc))
    parameters = set(inspect.signature(BFCLEnv.__init__).parameters) - {"self"}
    assert parameters - documented == set(), "constructor arguments missing from the BFCLEnv docstring"
    keys = _emitted_info_keys()
    assert {"task_id", "tools", "parse", "structure", "calls", "turn_verdict", "verdict", "ood", "ood_seed"} <= keys
    assert keys - documented == set(), "info keys missing from the BFCLEnv docstring"
    unwrapped = env.unwrapped
    unwrapped.reset(options={"task_id": TASK})
    public = {name for name in vars(unwrapped) if not name.startswith("_")}
    assert public - documented == set(), "public attributes missing from the BFCLEnv docstring"
    for section in (
        "Action Space",
        "Observation Space",
        "Rewards",
        "Starting State",
        "Episode End",
        "Arguments",
        "Info",
        "Attributes",
        "Version History",
    ):
        assert f"## {section}" in doc, section
    assert "terminated" in doc and "truncated" in doc


# -- defect 4: API names as the env takes them ---------------------------------------------------


def test_the_env_takes_api_short_names_and_rejects_unknown_ones_in_one_line() -> None:
    assert [t.id for t in BFCLEnv(apis=["travel"]).tasks] == [t.id for t in BFCLEnv(apis=["TravelAPI"]).tasks]
    assert len(BFCLEnv(apis=["Math"], categories="base").tasks) > 0
    with pytest.raises(DataError) as info:
        BFCLEnv(apis=["flights"])
    assert "\n" not in str(info.value) and "valid: file_system" in str(info.value) and "TravelAPI" in str(info.value)
    assert get_task(TASK).id == TASK
