"""BFCL multi-turn as a verifiers 0.4.0 environment (``verifiers.v1``).

verifiers 0.4.0 has no ``MultiTurnEnv``: an environment is a :class:`vf.Taskset` (the rows)
and a :class:`vf.Env` whose ``run(task, agents)`` drives an agent turn by turn through
``agents.<role>.interaction(task)``; ``interaction.turn(message)`` sends one user turn and
returns the model's :class:`vf.Segment`; rewards go on the trace (``trace.record_reward``).
That is the contract of its own TextArena environment, which steps a game engine host-side
as the run's user; here the engine is a :class:`~integrations.verifiers.episode.BFCLEpisode`:

- the rollout state is one ``BFCLEpisode`` (a fresh ``BFCLEnv``) per ``run`` call, so the
  rollouts of one task (``-r n``) never share backends;
- env response: each assistant reply goes to ``BFCLEpisode.env_response``; its observation
  (tool results, or the next scripted user turn and miss_func reveal) is the next user turn;
- completion: the exchange ends when ``BFCLEpisode.is_completed`` (last turn's reply, or
  BFCL's step limit); an agent stopped first (``max_turns``, errors) scores 0;
- rubric: the reward ``bfcl`` is the env's final reward, the checker's entry score (0/1); the
  verdict is in ``trace.info["bfcl_verdict"]``.

The taskset id is ``toolenv-bfcl`` (module ``toolenv_bfcl``, registered on import of this
module; for ``vf-eval`` in a fresh process put ``integrations/verifiers/env`` on the path).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import verifiers.v1 as vf

from integrations.verifiers.episode import BFCLEpisode, oracle_replies, task_rows
from toolenv.data import get_task

__all__ = ["BFCLTaskset", "BFCLVerifiersEnv", "load_environment"]

#: the verifiers taskset id (the module name is this with ``_``)
TASKSET_ID = "toolenv-bfcl"
#: the reward name on each trace
REWARD = "bfcl"
#: assistant messages one rollout may send (BFCL allows 20 tool steps per user turn)
DEFAULT_MAX_TURNS = 128


class BFCLTasksetConfig(vf.TasksetConfig):
    """Which BFCL tasks load (``--env.taskset.*``): toolenv's selection arguments."""

    categories: list[str] | None = None
    """``base``, ``miss_func``, ``miss_param``, ``long_context`` (default: all four)."""
    split: str = "all"
    """``all``, or the paper's ``train``/``test`` halves."""
    limit: int | None = None
    """Keep the first ``limit`` selected tasks."""
    task_ids: list[str] | None = None
    call_format: str = "hermes"
    """A text call format: ``hermes``, ``python``, ``xml`` or ``json_block``."""
    data_version: str | None = None
    """The bfcl-eval release (default: toolenv's)."""


class BFCLData(vf.TaskData):
    """One BFCL task: its id, call format and release (the prompt is the env's reset)."""

    task_id: str
    category: str
    call_format: str = "hermes"
    data_version: str | None = None


class BFCLTask(vf.Task[BFCLData, vf.State, vf.TaskConfig]):
    """A BFCL task; ``validate`` plays its ground truth through a fresh ``BFCLEnv``."""

    @property
    def key(self) -> str:
        return f"{self.data.data_version}/{self.data.call_format}/{self.data.task_id}"

    async def validate(self, runtime: Any) -> bool | None:
        """Model-free check: the ground truth scores 1.0 through the env (``vf-validate``)."""
        episode = BFCLEpisode(self.data.task_id, self.data.call_format, self.data.data_version)
        for reply in oracle_replies(get_task(self.data.task_id, self.data.data_version), self.data.call_format):
            if episode.is_completed:
                break
            episode.env_response(reply)
        return episode.is_completed and episode.reward == 1.0


class BFCLTaskset(vf.Taskset[BFCLTask, BFCLTasksetConfig]):
    """The selected BFCL tasks; each prompt is the system message (the tools in the call
    format) and the first user turn, exactly as ``BFCLEnv.reset`` returns them."""

    def load(self) -> Iterator[BFCLTask]:
        c = self.config
        for row in task_rows(c.categories, c.split, c.limit, c.task_ids, c.call_format, c.data_version):
            data = BFCLData(
                id=row.task_id,
                name=row.task_id,
                prompt=[vf.UserMessage(content=m["content"]) for m in row.prompt],
                system_prompt=row.system_prompt,
                task_id=row.task_id,
                category=row.category,
                call_format=row.call_format,
                data_version=row.data_version,
            )
            yield BFCLTask(data, c.task)


class BFCLVerifiersEnvConfig(vf.EnvConfig):
    """The one role, ``agent``: a plain chat harness (``null``: no tools of its own; the
    calls are text in the call format, run by the env) in a local subprocess runtime (it runs
    no code; ``--env.agent.runtime.type`` chooses another)."""

    agent: vf.AgentConfig = vf.AgentConfig(
        harness={"id": "null"}, runtime=vf.SubprocessConfig(), max_turns=DEFAULT_MAX_TURNS
    )


class BFCLVerifiersEnv(vf.Env[BFCLVerifiersEnvConfig]):
    """Plays each rollout as one ``BFCLEpisode`` (see the module docstring)."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        data = task.data
        episode = BFCLEpisode(data.task_id, data.call_format, data.data_version)
        async with agents.agent.interaction(task) as interaction:
            segment = await interaction.turn()  # the prompt opens: the model speaks first
            while not segment.terminated:
                observation = episode.env_response(segment.last_reply)
                if episode.is_completed:
                    break
                segment = await interaction.turn(observation)
        record(interaction.trace, episode)


def record(trace: Any, episode: BFCLEpisode) -> None:
    """The rubric: the env's final reward as reward ``bfcl`` (0 for an unfinished episode),
    the verdict and step counts in ``trace.info`` and ``trace.metrics``."""
    trace.record_reward(REWARD, episode.reward if episode.is_completed else 0.0, 1.0)
    trace.record_metric("bfcl_completed", float(episode.is_completed))
    trace.record_metric("bfcl_truncated", float(episode.truncated))
    trace.record_metric("bfcl_messages", float(episode.num_steps))
    trace.info["bfcl_task_id"] = episode.task_id
    trace.info["bfcl_verdict"] = episode.verdict


def load_environment(**args: Any) -> vf.Env:
    """The BFCL environment. ``args``: the taskset's fields (``categories``, ``split``,
    ``limit``, ``task_ids``, ``call_format``, ``data_version``) and any other
    :class:`BFCLVerifiersEnvConfig` field (e.g. ``agent={"max_turns": 64}``)."""
    taskset_fields = set(BFCLTasksetConfig.model_fields) - {"id"}
    taskset = {k: v for k, v in args.items() if k in taskset_fields}
    rest = {k: v for k, v in args.items() if k not in taskset_fields}
    config = BFCLVerifiersEnvConfig(taskset=BFCLTasksetConfig(id=TASKSET_ID, **taskset), **rest)
    return BFCLVerifiersEnv(config)


# verifiers resolves a taskset id by importing a top-level module of that name (``toolenv-bfcl``
# -> ``toolenv_bfcl``); in this process that is this module.
sys.modules.setdefault(TASKSET_ID.replace("-", "_"), sys.modules[__name__])
