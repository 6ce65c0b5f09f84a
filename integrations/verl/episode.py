"""One BFCL episode played token-in/token-out on verl's server manager, without verl.

:func:`play_episode` runs toolenv's own rollout driver (:class:`trainers.rollout.RolloutDriver`,
the one episode loop: ChatRenderer prompts, sampled ids kept verbatim, observation deltas
masked, the env's reward) on one fresh ``BFCLEnv``, with a token engine
(:class:`ServerEngine`) whose ``generate`` awaits verl's
``server_manager.generate(request_id=..., prompt_ids=..., sampling_params=...)`` (verl 0.9.1
``LLMServerClient.generate``, returning a ``TokenOutput`` with ``token_ids``, ``log_probs``).
The driver is synchronous, so it runs in a worker thread and each generation is handed to the
agent loop's event loop (``asyncio.run_coroutine_threadsafe``); the loop stays free for the
other episodes meanwhile.

The result is the field set of verl's ``AgentLoopOutput``: ``prompt_ids``; ``response_ids``
(sampled ids and observation tokens interleaved); ``response_mask`` (1 on sampled ids, 0 on
observation tokens); ``response_logprobs`` (when the server returned log-probs; 0.0 on
observation tokens); ``reward_score`` (the BFCL checker's entry score, 0/1; 0.0 for an episode
cut by a budget, ``rollout.response_length`` included); ``num_turns`` (chat messages:
system, user, assistant and tool); ``metrics``; ``extra_fields``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from toolenv.inference.template import stop_token_ids
from toolenv.inference.types import Generation, SamplingParams
from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver, default_env_factory
from trainers.types import Rollout

#: the verl server's sampling key for the per-message token budget
MAX_TOKENS_KEY = "max_tokens"


class ServerEngine:
    """A toolenv :class:`~toolenv.inference.types.TokenEngine` over verl's async server
    manager, called from a worker thread; ``loop`` is the event loop the manager lives on.

    Every request of one episode carries the same ``request_id`` (verl's sticky session: its
    turns reach the same server and its prefix cache). ``sampling_params`` are verl's (the
    worker's temperature, top_p, top_k, logprobs), with ``max_tokens`` set per message from
    the driver's budget. A generation ending in one of ``stop_ids`` finished with ``"stop"``."""

    def __init__(
        self,
        server_manager: Any,
        tokenizer: Any,
        loop: asyncio.AbstractEventLoop,
        sampling_params: Mapping[str, Any],
        request_id: str | None = None,
    ) -> None:
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.loop = loop
        self.sampling_params = dict(sampling_params)
        self.request_id = request_id or uuid.uuid4().hex
        self.stop_ids = stop_token_ids(tokenizer)
        self.generate_seconds = 0.0
        self.returned_logprobs = True

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One generation per prompt, each awaited on the manager's loop in turn."""
        params = [sampling] * len(prompts) if isinstance(sampling, SamplingParams) else list(sampling)
        return [self._one(list(prompt), p.max_new_tokens) for prompt, p in zip(prompts, params)]

    def _one(self, prompt: list[int], max_new_tokens: int) -> Generation:
        request = {**self.sampling_params, MAX_TOKENS_KEY: int(max_new_tokens)}
        started = time.perf_counter()
        coroutine = self.server_manager.generate(request_id=self.request_id, prompt_ids=prompt, sampling_params=request)
        output = asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
        self.generate_seconds += time.perf_counter() - started
        ids = [int(t) for t in output.token_ids]
        logprobs = list(output.log_probs) if output.log_probs else None
        if logprobs is None or len(logprobs) != len(ids):
            self.returned_logprobs = False
            logprobs = [0.0] * len(ids)
        finish = "stop" if ids and ids[-1] in self.stop_ids else "length"
        return Generation(ids, [float(x) for x in logprobs], finish)

    def sync_weights(self, model: Any) -> None:
        """Nothing: verl updates its servers' weights itself."""


@dataclass
class EpisodeOutput:
    """The ``AgentLoopOutput`` fields of one episode (see the module docstring)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    reward_score: float
    num_turns: int
    metrics: dict[str, float] = field(default_factory=dict)
    extra_fields: dict[str, Any] = field(default_factory=dict)


async def play_episode(
    server_manager: Any,
    tokenizer: Any,
    task_id: str,
    sampling_params: Mapping[str, Any],
    *,
    response_length: int,
    prompt_length: int,
    call_format: str = "hermes",
    max_new_tokens: int | None = None,
    max_messages: int = 32,
    executor: Executor | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EpisodeOutput:
    """Play ``task_id`` once on a fresh ``BFCLEnv`` with generations from ``server_manager``.

    Budgets: ``prompt_length + response_length`` tokens in all, at most ``max_messages``
    assistant messages and ``max_new_tokens`` (default ``response_length``) per message; a
    response longer than ``response_length`` is cut there and scores 0.0. ``executor`` runs
    the driver's thread (default: the loop's default executor). A prompt longer than
    ``prompt_length`` is a ValueError (filter such rows: ``data.filter_overlong_prompts``)."""
    loop = asyncio.get_running_loop()
    engine = ServerEngine(server_manager, tokenizer, loop, sampling_params)
    driver = RolloutDriver(
        engine,
        tokenizer,
        env_factory=default_env_factory(call_format, **dict(env_kwargs or {})),
        sampling=SamplingParams(max_new_tokens=int(max_new_tokens or response_length)),
        budgets=Budgets(max_total_tokens=prompt_length + response_length, max_messages=max_messages),
    )
    started = time.perf_counter()
    rollout = await loop.run_in_executor(executor, lambda: driver.run([EpisodeSpec(task_id)])[0])
    total = time.perf_counter() - started
    if len(rollout.prompt_ids) > prompt_length:
        raise ValueError(
            f"{task_id}: the prompt has {len(rollout.prompt_ids)} tokens, more than rollout.prompt_length="
            f"{prompt_length}; raise it or set data.filter_overlong_prompts=True"
        )
    return episode_output(rollout, engine, response_length, total)


def episode_output(rollout: Rollout, engine: ServerEngine, response_length: int, seconds: float) -> EpisodeOutput:
    """``rollout`` as ``AgentLoopOutput`` fields, cut at ``response_length``."""
    cut = len(rollout.completion_ids) > response_length
    truncation = "response_length" if cut else rollout.meta["truncation"]
    verdict = rollout.trajectory.verdict if rollout.trajectory is not None else None
    return EpisodeOutput(
        prompt_ids=list(rollout.prompt_ids),
        response_ids=list(rollout.completion_ids[:response_length]),
        response_mask=list(rollout.loss_mask[:response_length]),
        response_logprobs=list(rollout.sample_logprobs[:response_length]) if engine.returned_logprobs else None,
        reward_score=0.0 if cut else float(rollout.reward),
        num_turns=len(rollout.trajectory.messages) if rollout.trajectory is not None else 0,
        metrics={
            "generate_sequences": engine.generate_seconds,
            "tool_calls": max(0.0, seconds - engine.generate_seconds),
        },
        extra_fields={
            "turn_scores": [],  # the keys verl's own loops set
            "tool_rewards": [],
            "toolenv_task_id": rollout.task_id,
            "toolenv_truncation": truncation,
            "toolenv_messages": rollout.meta["num_messages"],
            "toolenv_failure": verdict.get("failure") if isinstance(verdict, dict) else None,
        },
    )
