"""The records that flow through the trainer: what the rollout engine hands to SFT and GRPO.

A :class:`Rollout` is token-faithful: ``completion_ids`` are exactly the ids the engine sampled
(never a decode-and-re-encode of the model's own text) interleaved with the tokenised
observations (tool results, next user turns, chat-template separators). ``loss_mask`` is 1 on
sampled tokens (each assistant message's end-of-turn token included) and 0 on observation
tokens; the prompt is never trained. ``sample_logprobs`` are the engine's log-probabilities of
the sampled tokens under the sampling policy (0.0 where the mask is 0).

"Under the sampling policy" means the distribution the token was drawn from: logits / T, then
top-k / top-p filtered and renormalised (vLLM's ``processed_logprobs``); with ``top_k=-1,
top_p=1`` that is ``log_softmax(logits / T)``, and ``log_softmax(logits)`` for greedy. How the
sequence is built (observation deltas, length stops, hooks, budgets) and the ``meta`` keys are
documented in :mod:`trainers.rollout`.

Fields are additive: later work (supervision methods) adds flags, never changes meanings.

The engine-level records (:class:`~toolenv.inference.types.SamplingParams`, ``Generation``,
``TokenEngine``) belong to the inference layer (:mod:`toolenv.inference.types`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolenv.trajectory import Trajectory

__all__ = ["Rollout"]


@dataclass
class Rollout:
    """One episode played by the policy (or supplied as a demonstration), as token ids."""

    task_id: str
    group: int  # index of the task's group in the batch
    sample: int  # index within the group, 0..n-1
    prompt_ids: list[int]  # system + first user turn + the assistant header
    completion_ids: list[int]  # sampled and observation tokens, in order
    loss_mask: list[int]  # 1 on sampled (trained) tokens, 0 on observation tokens
    sample_logprobs: list[float]  # sampling-policy log-prob per completion token (0.0 where mask is 0,
    #                               and on replaced, not sampled, messages: meta["replaced_spans"])
    reward: float
    trajectory: Trajectory  # the text-level record (checker verdict, structural states)
    truncated: bool = False  # ran out of token, message or step budget
    source: str = "policy"  # "policy" or, for supervision, e.g. "ground_truth"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.completion_ids) == len(self.loss_mask) == len(self.sample_logprobs)):
            raise ValueError("completion_ids, loss_mask and sample_logprobs must have the same length")

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def num_trained_tokens(self) -> int:
        return sum(self.loss_mask)
