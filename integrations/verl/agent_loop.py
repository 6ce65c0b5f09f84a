"""verl's agent loop ``toolenv_bfcl``: one BFCL episode per dataset row (verl 0.9.1).

Contract (``verl/experimental/agent_loop/agent_loop.py``): ``@register(name)`` maps the
dataset's ``agent_name`` to a class; the worker builds it with ``hydra.utils.instantiate``
(``trainer_config``, ``server_manager``, ``tokenizer``, ``processor``, ``dataset_cls``,
``data_config``, ... and the extra keys of an ``agent_loop_config_path`` entry) and awaits
``run(sampling_params, **row)``, which returns an ``AgentLoopOutput``. A loop that sets
``reward_score`` has computed its own reward (verl then skips its reward loop and writes the
score on the last response token as ``rm_scores``).

:class:`BFCLAgentLoop` plays the row's task with :func:`integrations.verl.episode.play_episode`
(toolenv's rollout driver on a fresh ``BFCLEnv``, generations from ``self.server_manager``) and
returns its fields. Episodes never share state: each ``run`` has its own env.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from integrations.verl.dataset import AGENT_NAME, task_id_of
from integrations.verl.episode import play_episode

#: threads that run episodes' drivers (each mostly waits on the server); shared by the loops
#: of one worker process
_EXECUTOR = ThreadPoolExecutor(max_workers=512, thread_name_prefix="toolenv-bfcl")


@register(AGENT_NAME)
class BFCLAgentLoop(AgentLoopBase):
    """BFCL multi-turn episodes as a verl agent loop (see the module docstring).

    Options (keys of the ``agent_loop_config_path`` entry): ``call_format`` (a text call
    format, default ``hermes``; the row's ``extra_info.call_format`` wins), ``max_new_tokens``
    per assistant message (default ``rollout.response_length``), ``max_messages`` per episode
    (default ``actor_rollout_ref.rollout.multi_turn.max_assistant_turns``, else 32)."""

    def __init__(
        self,
        *args: Any,
        call_format: str = "hermes",
        max_new_tokens: int | None = None,
        max_messages: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.call_format = call_format
        self.max_new_tokens = max_new_tokens
        turns = (self.rollout_config.get("multi_turn") or {}).get("max_assistant_turns")
        self.max_messages = int(max_messages or turns or 32)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """One episode of the row's task (``extra_info.task_id``)."""
        extra = kwargs.get("extra_info") or {}
        episode = await play_episode(
            self.server_manager,
            self.tokenizer,
            task_id_of(kwargs),
            sampling_params,
            response_length=int(self.rollout_config.response_length),
            prompt_length=int(self.rollout_config.prompt_length),
            call_format=str(extra.get("call_format") or self.call_format),
            max_new_tokens=self.max_new_tokens,
            max_messages=self.max_messages,
            executor=_EXECUTOR,
            env_kwargs={"data_version": extra.get("data_version")} if extra.get("data_version") else None,
        )
        return AgentLoopOutput(
            prompt_ids=episode.prompt_ids,
            response_ids=episode.response_ids,
            response_mask=episode.response_mask,
            response_logprobs=episode.response_logprobs,
            reward_score=episode.reward_score,
            num_turns=episode.num_turns,
            metrics=AgentLoopMetrics(**episode.metrics),
            extra_fields=episode.extra_fields,
        )
