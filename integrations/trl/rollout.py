"""A ``rollout_func`` for TRL's ``GRPOTrainer`` that plays whole multi-turn BFCL episodes.

TRL 1.16 contract (``trl/trainer/grpo_trainer.py``): ``GRPOTrainer._generate`` calls
``output = self.rollout_func(prompts, self)`` with the prompts of this process's slice of the
batch (the dataset's ``prompt`` column; the ``RepeatSampler`` has already repeated each prompt
``num_generations`` times, so one completion is returned per prompt given), and requires the
keys ``prompt_ids``, ``completion_ids`` and ``logprobs`` (lists of lists). ``env_mask`` is
popped from the other keys and used as the tool mask (1 = model token, trained; 0 = external
token, not trained: ``loss_mask = completion_mask * tool_mask``). Every other key is merged
into the batch rows and reaches the reward functions as a keyword argument.

:class:`BFCLRollout` meets it with the trainer's own rollout driver
(:class:`trainers.rollout.RolloutDriver`: the one episode loop) on an
:class:`~toolenv.inference.hf_engine.HFEngine` around TRL's policy, unwrapped with
``trl.models.unwrap_model_for_generation`` (DDP, DeepSpeed ZeRO-3 gathering, FSDP as TRL
itself generates). Per prompt it returns

- ``prompt_ids``: the chat template of the episode's first messages (system prompt with the
  call format's tool listing, first user turn) with the generation header;
- ``completion_ids``: the sampled assistant ids verbatim, interleaved with the observation
  tokens (tool results, scripted user turns 2..N, miss_func reveals);
- ``logprobs``: the sampling log-probs of the sampled tokens, 0.0 on observation tokens;
- ``env_mask``: 1 on sampled tokens, 0 on observation tokens;
- ``toolenv_reward``: the BFCL checker's entry score (0/1; 0 for an episode cut by a budget),
  read by :func:`bfcl_reward`; ``toolenv_truncated`` and ``toolenv_num_messages`` for logs.

Each episode is a fresh ``BFCLEnv`` (``default_env_factory``): no backend state is shared
between the rollouts of one task. Generation is the HF engine on TRL's model (``use_vllm`` is
refused: TRL's vLLM generation is a collective, one call per step for every rank, while the
episodes of a batch end after different numbers of rounds); any toolenv token engine may be
passed instead (e.g. ``toolenv.inference.vllm_engine.VLLMEngine``, one per process), and it is
given the policy's weights with ``sync_weights`` before each rollout.

TRL settings that do not apply: ``max_completion_length`` (the episode budgets are
``max_new_tokens`` per message and ``budgets``), ``min_p`` and ``repetition_penalty`` (not in
toolenv's sampling), ``mask_truncated_completions=True`` (refused: an episode ends with the
template's closing after its last message, e.g. ``"\n"``, not with EOS, so TRL's
``completions/clipped_ratio`` metric also reads 1.0 for every episode).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from integrations.trl.dataset import resolve_tasks, task_id_of
from toolenv.inference.types import SamplingParams, TokenEngine
from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver, default_env_factory
from trainers.types import Rollout

#: the extra rollout field that carries the checker's reward to :func:`bfcl_reward`
REWARD_KEY = "toolenv_reward"
#: prompt + completion tokens of one episode, unless the caller sets ``budgets``: long enough
#: for the longest BFCL prompts (long_context) plus several turns
DEFAULT_BUDGETS = Budgets(max_total_tokens=16_384, max_messages=32)


def bfcl_reward(completions: Sequence[Any], toolenv_reward: Sequence[float] | None = None, **_: Any) -> list[float]:
    """TRL reward function: the BFCL checker's entry score of each episode, as
    :class:`BFCLRollout` returned it (field ``toolenv_reward``). Pass it in ``reward_funcs``
    together with ``rollout_func=BFCLRollout(...)``."""
    if toolenv_reward is None:
        raise ValueError("bfcl_reward needs the 'toolenv_reward' field: use it with rollout_func=BFCLRollout(...)")
    if len(toolenv_reward) != len(completions):
        raise ValueError(f"{len(toolenv_reward)} rewards for {len(completions)} completions")
    return [float(reward) for reward in toolenv_reward]


def call_seed(base: int, call: int) -> int:
    """The driver's seed for the ``call``-th rollout of a run (a fresh stream per call)."""
    digest = hashlib.blake2b(f"trl/{base}/{call}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def trainer_sampling(trainer: Any, max_new_tokens: int) -> SamplingParams:
    """The trainer's decoding settings (``temperature``, ``top_p``, ``top_k``) per message.
    TRL's ``top_k`` 0/None (no truncation) is toolenv's -1."""
    top_k = getattr(trainer, "top_k", None)
    return SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=float(trainer.temperature),
        top_p=float(trainer.top_p if trainer.top_p is not None else 1.0),
        top_k=int(top_k) if top_k else -1,
    )


def tokenizer_of(trainer: Any) -> Any:
    """The text tokenizer of TRL's processing class (a processor holds it as ``.tokenizer``)."""
    processing = trainer.processing_class
    return getattr(processing, "tokenizer", processing)


def to_output(rollouts: Sequence[Rollout]) -> dict[str, list[Any]]:
    """The rollout_func's output dict (see the module docstring), one entry per rollout."""
    for rollout in rollouts:
        if not rollout.completion_ids:
            # TRL reads completion_ids[-1]; an empty completion means the prompt filled the budget
            raise ValueError(
                f"the prompt of {rollout.task_id} ({len(rollout.prompt_ids)} tokens) leaves no room under "
                "budgets.max_total_tokens: raise it"
            )
    return {
        "prompt_ids": [list(r.prompt_ids) for r in rollouts],
        "completion_ids": [list(r.completion_ids) for r in rollouts],
        "logprobs": [list(r.sample_logprobs) for r in rollouts],
        "env_mask": [list(r.loss_mask) for r in rollouts],
        REWARD_KEY: [float(r.reward) for r in rollouts],
        "toolenv_truncated": [bool(r.truncated) for r in rollouts],
        "toolenv_num_messages": [int(r.meta["num_messages"]) for r in rollouts],
    }


@dataclass
class BFCLRollout:
    """``rollout_func`` for ``GRPOTrainer`` (see the module docstring).

    - ``call_format``: the call format of the episodes (``hermes`` by default, the paper's);
      ``env_kwargs`` go to each ``BFCLEnv`` as well (``ood``, ``ood_seed``,
      ``max_steps_per_turn``, ``data_version``, ...).
    - ``max_new_tokens``: tokens per assistant message; ``budgets``: tokens per episode
      (prompt + completion) and assistant messages per episode (a budget-cut episode scores 0).
    - ``sampling``: fixed decoding settings; ``None`` takes the trainer's ``temperature``,
      ``top_p`` and ``top_k`` with ``max_new_tokens`` (``temperature=0`` is greedy).
    - ``engine``: a toolenv token engine to generate with instead of TRL's model (it gets the
      policy's weights through ``sync_weights`` before each rollout); ``hf_mode``: the HF
      engine's mode when ``engine`` is None (``None``: ``cached`` on CPU, ``batched`` on GPU).
    - ``seed``: the base of the sampling seeds (``None``: the trainer's ``args.seed``); each
      call draws a fresh seed stream, and each episode its own seeds within it.

    ``last_rollouts`` keeps the toolenv rollouts of the last call (trajectories, verdicts).
    """

    call_format: str = "hermes"
    max_new_tokens: int = 256
    budgets: Budgets = DEFAULT_BUDGETS
    sampling: SamplingParams | None = None
    tools_via_template: bool = False
    engine: TokenEngine | None = None
    hf_mode: str | None = None
    seed: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    last_rollouts: list[Rollout] = field(default_factory=list, repr=False)
    _calls: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        # a bad call format or environment option fails here, in one line, before the trainer is built
        from toolenv.env import BFCLEnv

        BFCLEnv(call_format=self.call_format, observation_mode="messages", **self.env_kwargs)

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with TRL's current policy; TRL's output dict."""
        if getattr(trainer, "use_vllm", False) and self.engine is None:
            raise ValueError(
                "BFCLRollout does not drive TRL's vLLM generation (use_vllm=True); pass engine=<a toolenv token "
                "engine, e.g. VLLMEngine> or train with use_vllm=False"
            )
        if getattr(trainer, "mask_truncated_completions", False):
            # TRL calls a completion truncated unless its last id is EOS/pad; an episode's ids end
            # with the template's closing after the last message ("\n" for ChatML), so every one
            # would be masked. Budget-cut episodes already score 0 (toolenv_truncated says which).
            raise ValueError(
                "BFCLRollout needs mask_truncated_completions=False: every episode ends with the chat template's "
                "closing after its last message, which TRL would read as truncated"
            )
        task_ids = [task_id_of(prompt) for prompt in prompts]
        resolve_tasks(task_ids, self.env_kwargs.get("data_version"))  # every id is checked before any episode
        specs = self._specs(task_ids, trainer)
        seed = call_seed(self.seed if self.seed is not None else int(trainer.args.seed), self._calls)
        self._calls += 1
        sampling = self.sampling or trainer_sampling(trainer, self.max_new_tokens)
        self.last_rollouts = self._play(specs, trainer, sampling, seed)
        return to_output(self.last_rollouts)

    # -- internals ---------------------------------------------------------------------------

    def _specs(self, task_ids: Sequence[str], trainer: Any) -> list[EpisodeSpec]:
        """One episode per prompt; the group index is the prompt's position in the whole batch
        (this process's offset included), so every rollout of a step has its own seeds."""
        offset = int(getattr(trainer.accelerator, "process_index", 0)) * len(task_ids)
        return [EpisodeSpec(task_id, group=offset + i, sample=0) for i, task_id in enumerate(task_ids)]

    def _driver(self, engine: Any, tokenizer: Any, sampling: SamplingParams, seed: int) -> RolloutDriver:
        return RolloutDriver(
            engine,
            tokenizer,
            env_factory=default_env_factory(self.call_format, **self.env_kwargs),
            sampling=sampling,
            budgets=self.budgets,
            tools_via_template=self.tools_via_template,
            seed=seed,
        )

    def _play(self, specs: list[EpisodeSpec], trainer: Any, sampling: SamplingParams, seed: int) -> list[Rollout]:
        from trl.models import unwrap_model_for_generation

        from toolenv.inference.hf_engine import HFEngine

        tokenizer = tokenizer_of(trainer)
        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model:
            if self.engine is not None:
                self.engine.sync_weights(model)
                engine = self.engine
            else:
                # a fresh engine per call: its KV caches were computed with the previous weights
                engine = HFEngine(model, tokenizer, mode=self.hf_mode)
            return self._driver(engine, tokenizer, sampling, seed).run(specs)
