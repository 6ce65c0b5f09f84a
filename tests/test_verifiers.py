"""The verifiers adapter (issue #16 item 3): BFCL episodes under verifiers 0.4.0's contract.

The core (:mod:`integrations.verifiers.episode`, no verifiers needed) plays the ground truth
through ``env_response`` / ``is_completed`` / ``reward`` to 1.0 with exactly ``BFCLEnv``'s
observations, and two rollouts of one task share no backend state. With verifiers installed
(its own environment: it pins mcp==2.0.0 and openai<3), the ``vf.Env`` itself runs: its
``run(task, agents)`` against a scripted agent (the interaction protocol ``vf.Env.run`` drives:
``turn()`` returning real ``vf.Segment`` objects, a real ``vf.Trace``), concurrently for two
rollouts of one task, and ``validate`` (what ``vf-validate`` calls) passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest

from integrations.verifiers.episode import BFCLEpisode, as_user, check_call_format, oracle_replies, task_rows
from toolenv.data import get_task
from toolenv.env import BFCLEnv

BASE = "multi_turn_base_0"
MISS_FUNC = "multi_turn_miss_func_3"


def direct_observations(task_id: str, replies: list[str]) -> list[list[dict[str, Any]]]:
    """The observations ``BFCLEnv`` itself gives for ``replies`` (as user messages)."""
    env = BFCLEnv(task_ids=[task_id], call_format="hermes", observation_mode="messages")
    env.reset(options={"task_id": task_id})
    return [as_user(env.step(reply)[0]) for reply in replies]


@pytest.mark.parametrize("task_id", [BASE, MISS_FUNC])
def test_the_oracle_scores_1_through_env_response_with_bfclenvs_observations(task_id: str) -> None:
    replies = oracle_replies(get_task(task_id))
    episode = BFCLEpisode(task_id)
    seen = []
    for reply in replies:
        assert not episode.is_completed
        seen.append(episode.env_response(reply))
    assert episode.is_completed and not episode.truncated
    assert episode.reward == 1.0 and episode.verdict is not None and episode.verdict["passed"]
    assert seen == direct_observations(task_id, replies)
    assert all(m["role"] == "user" for turn in seen for m in turn)
    with pytest.raises(RuntimeError, match="completed"):
        episode.env_response("again")


def test_a_wrong_episode_scores_0() -> None:
    episode = BFCLEpisode(BASE)
    while not episode.is_completed:
        episode.env_response("I cannot help with that.")
    assert episode.reward == 0.0


def test_two_rollouts_of_one_task_share_no_state() -> None:
    replies = oracle_replies(get_task(BASE))
    first, second = BFCLEpisode(BASE), BFCLEpisode(BASE)
    assert first.env is not second.env
    # interleaved: the first moves files, then the second must still see the initial state
    one = first.env_response(replies[0])
    two = second.env_response(replies[0])
    assert one == two
    for reply in replies[1:]:
        first.env_response(reply)
    assert first.reward == 1.0 and not second.is_completed
    for reply in replies[1:]:
        second.env_response(reply)
    assert second.reward == 1.0


def test_task_rows_are_the_envs_first_messages() -> None:
    rows = task_rows(["base"], split="test", limit=3)
    assert len(rows) == 3 and all(r.category == "base" for r in rows)
    env = BFCLEnv(task_ids=[rows[0].task_id], call_format="hermes", observation_mode="messages")
    first, _ = env.reset(options={"task_id": rows[0].task_id})
    assert rows[0].system_prompt == first[0]["content"] and rows[0].prompt == as_user(first[1:])
    with pytest.raises(ValueError, match="valid: hermes"):
        check_call_format("openai")


# -- the verifiers environment ----------------------------------------------------------


@pytest.fixture(scope="module")
def vf() -> Any:
    return pytest.importorskip("verifiers.v1", reason="needs verifiers 0.4.0 (extra 'verifiers', own environment)")


class ScriptedInteraction:
    """The interaction ``vf.Env.run`` drives, with the model's replies scripted: each
    ``turn`` records the user turn and returns the next reply as a real ``vf.Segment``."""

    def __init__(self, vf: Any, task: Any, replies: list[str]) -> None:
        self.vf = vf
        self.replies = list(replies)
        self.received: list[Any] = []
        self.trace = vf.Trace(
            task=vf.TraceTask(type=type(task).__name__, data=task.data, key=task.key, hash=task.hash),
            agent=vf.AgentInfo(config=vf.AgentConfig()),
        )

    async def turn(self, message: Any = None) -> Any:
        self.received.append(message)
        await asyncio.sleep(0)  # let a concurrent rollout interleave
        if not self.replies:
            return self.vf.Segment(messages=[], terminated=True)
        return self.vf.Segment(messages=[self.vf.AssistantMessage(content=self.replies.pop(0))])


class ScriptedAgents:
    """``agents`` with the one role ``agent`` (``BFCLVerifiersEnvConfig``)."""

    def __init__(self, vf: Any, replies: list[str]) -> None:
        self.vf, self.replies, self.interactions = vf, replies, []

    @property
    def agent(self) -> "ScriptedAgents":
        return self

    @contextlib.asynccontextmanager
    async def interaction(self, task: Any) -> AsyncIterator[ScriptedInteraction]:
        interaction = ScriptedInteraction(self.vf, task, self.replies)
        self.interactions.append(interaction)
        yield interaction


def load(**args: Any) -> Any:
    from integrations.verifiers import load_environment

    return load_environment(**args)


def test_load_environment_gives_the_bfcl_taskset(vf: Any) -> None:
    env = load(categories=["base"], split="test", limit=2)
    assert isinstance(env, vf.Env)
    tasks = list(env.taskset)
    rows = task_rows(["base"], split="test", limit=2)
    assert [t.data.task_id for t in tasks] == [r.task_id for r in rows]
    assert tasks[0].data.system_prompt == rows[0].system_prompt
    assert [m.content for m in tasks[0].data.prompt] == [m["content"] for m in rows[0].prompt]
    assert env.config.agent.harness.id == "null"


def test_the_env_plays_the_oracle_to_reward_1_and_rollouts_are_isolated(vf: Any) -> None:
    env = load(task_ids=[BASE])
    (task,) = list(env.taskset)
    replies = oracle_replies(get_task(BASE))
    agents = [ScriptedAgents(vf, replies), ScriptedAgents(vf, replies)]

    async def both() -> None:  # two rollouts of one task at once, their turns interleaved
        await asyncio.gather(*(env.run(task, a) for a in agents))

    asyncio.run(both())
    expected = direct_observations(BASE, replies)
    for a in agents:
        (interaction,) = a.interactions
        trace = interaction.trace
        assert trace.rewards["bfcl"].score == 1.0 and trace.metrics["bfcl_completed"] == 1.0
        assert trace.info["bfcl_verdict"]["passed"]
        # the first turn is a bare turn() (the prompt opens), then each observation
        assert interaction.received[0] is None
        assert interaction.received[1:] == expected[:-1]


def test_an_agent_that_stops_early_scores_0(vf: Any) -> None:
    env = load(task_ids=[BASE])
    (task,) = list(env.taskset)
    agents = ScriptedAgents(vf, oracle_replies(get_task(BASE))[:2])
    asyncio.run(env.run(task, agents))
    trace = agents.interactions[0].trace
    assert trace.rewards["bfcl"].score == 0.0 and trace.metrics["bfcl_completed"] == 0.0


def test_validate_plays_the_ground_truth(vf: Any) -> None:
    env = load(task_ids=[BASE, MISS_FUNC])
    assert [asyncio.run(task.validate(None)) for task in env.taskset] == [True, True]
