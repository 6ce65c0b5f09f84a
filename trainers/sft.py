"""Supervised fine-tuning on ground-truth demonstrations.

Demonstrations (docs/paper-methods.md §1.3). The BFCL ground truth is only call strings; a
demonstration plays it through the real environment: each turn's calls are rendered in the
chosen call format (one call per assistant message, as the paper's synthesised data, or all of
a turn's calls in one message), executed by :class:`~toolenv.env.BFCLEnv` for real
observations, and the turn is closed by a short reply. The reply comes from a built-in
template (a completion sentence; for a turn with no ground-truth calls, a request for the
missing parameters or a statement that no available function fits, as the paper's fixed
apologies) or, optionally, from an OpenAI-compatible endpoint asked to summarise the turn, as
the paper did with Qwen3-32B. Every demonstration is scored by the BFCL checker as it is
played; those that do not score 1 are dropped by default (the paper did not filter; its
checklist recommends it).

Samples. ``per_message`` (the paper's): one sample per assistant message, prompt = the
templated conversation before it, target = the message plus end-of-turn. ``trajectory``: the
whole conversation as one sequence, observation tokens masked — the same layout the rollouts
use (:mod:`trainers.tokenize`). Sequences longer than ``max_length`` keep their last tokens
(verl's left truncation).

Loss. Cross-entropy on target tokens only (end-of-turn included), averaged over all target
tokens of the optimizer step's batch however it is split into micro-batches (verl averages per
micro-batch and then over micro-batches, which weighs short micro-batches' tokens more).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from toolenv.data import Task
from toolenv.env import BFCLEnv
from toolenv.executor import keyword_call
from toolenv.expert import DEFAULT_REPLY
from toolenv.formats import Codec, get_codec
from toolenv.inference.template import template_message
from trainers.tokenize import TokenizedConversation, tokenize_conversation, tokenize_per_message

SAMPLE_MODES = ("per_message", "trajectory")
CALL_GROUPING = ("one", "all")

MISSING_PARAMETERS_REPLY = "I cannot do that yet: some required information is missing. Could you provide it?"
MISSING_FUNCTION_REPLY = "I cannot do that: none of the functions available to me can carry out this request."


# -- replies -------------------------------------------------------------------------------


class ReplyWriter(Protocol):
    """Writes the plain reply that closes a turn, given the conversation so far."""

    def __call__(self, task: Task, messages: Sequence[dict[str, Any]], turn: int, had_calls: bool) -> str: ...


def template_reply(task: Task, messages: Sequence[dict[str, Any]], turn: int, had_calls: bool) -> str:
    """The built-in replies (see the module docstring)."""
    if had_calls:
        return DEFAULT_REPLY
    if task.category == "miss_param":
        return MISSING_PARAMETERS_REPLY
    if task.category == "miss_func":
        return MISSING_FUNCTION_REPLY
    return DEFAULT_REPLY


REPLY_INSTRUCTION = (
    "Write the assistant's reply that ends this turn: tell the user in plain natural language "
    "what was done and what the tool results show (or, if nothing could be done, what is "
    "missing). Do not call any tool and do not use tool-call tags."
)


class EndpointReplyWriter:
    """Replies written by a model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    The endpoint sees the conversation (tool results as user messages, so any server accepts
    it) and an instruction; text after a ``</think>`` is kept. A reply that is empty or
    contains tool-call structure falls back to the template (counted in ``fallbacks``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        codec: Codec,
        temperature: float = 0.7,
        max_new_tokens: int = 512,
        api_key: str | None = None,
    ) -> None:
        from toolenv.inference.endpoint import OpenAIEndpointModel
        from toolenv.inference.types import GenerationConfig

        self.model = OpenAIEndpointModel(
            base_url, model, GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature), api_key=api_key
        )
        self.codec = codec
        self.fallbacks = 0

    def __call__(self, task: Task, messages: Sequence[dict[str, Any]], turn: int, had_calls: bool) -> str:
        shown = [template_message(m, keep_tool_role=False) for m in messages]
        shown.append({"role": "user", "content": REPLY_INSTRUCTION})
        text = self.model.generate([shown])[0]
        text = text.split("</think>")[-1].strip() if isinstance(text, str) else ""
        if not text or self.codec.parse(text).attempted:
            self.fallbacks += 1
            return template_reply(task, messages, turn, had_calls)
        return text


# -- demonstrations ------------------------------------------------------------------------


@dataclass
class Demonstration:
    """A ground-truth episode as chat messages, with the checker's score of it."""

    task_id: str
    category: str
    call_format: str
    messages: list[dict[str, Any]]
    reward: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def play_ground_truth(
    task: Task, call_format: str = "hermes", reply: ReplyWriter = template_reply, calls_per_message: str = "one"
) -> Demonstration:
    """Play ``task``'s ground truth through the environment (see the module docstring)."""
    if calls_per_message not in CALL_GROUPING:
        raise ValueError(f"calls_per_message must be one of {', '.join(CALL_GROUPING)}, got {calls_per_message!r}")
    codec = get_codec(call_format)
    # "messages" observations: what the rollout driver plays with, so demonstrations and
    # rollouts render tool results identically
    env = BFCLEnv(categories=[task.category], task_ids=[task.id], call_format=call_format, observation_mode="messages")
    env.reset(options={"task_id": task.id})
    done = False
    for turn, calls in enumerate(task.ground_truth_calls):
        bound = [keyword_call(call, task.involved_classes, task.release) for call in calls]
        groups = _group_calls(bound, calls_per_message, env.max_steps_per_turn)
        for group in groups:
            _, _, terminated, truncated, _ = env.step(codec.render_calls(group))
            if terminated or truncated:
                raise RuntimeError(f"{task.id}: the episode ended inside turn {turn}")
        assert env.trajectory is not None
        text = reply(task, env.trajectory.messages, turn, bool(bound))
        _, _, terminated, truncated, _ = env.step(text)
        done = terminated or truncated
    assert env.trajectory is not None and done
    return Demonstration(
        task.id,
        task.category,
        call_format,
        [dict(m) for m in env.trajectory.messages],
        float(env.trajectory.reward or 0.0),
    )


def _group_calls(calls: list[Any], calls_per_message: str, max_steps: int) -> list[list[Any]]:
    """The assistant messages of one turn. ``"one"``: a call per message, except that a turn
    with more calls than BFCL's per-turn step limit (some have 34) is spread over exactly
    ``max_steps`` messages in order, so the demonstration is not force-quit."""
    if not calls:
        return []
    if calls_per_message == "all":
        return [calls]
    if len(calls) <= max_steps:
        return [[call] for call in calls]
    size, extra = divmod(len(calls), max_steps)
    groups, start = [], 0
    for index in range(max_steps):
        end = start + size + (1 if index < extra else 0)
        groups.append(calls[start:end])
        start = end
    return groups


def build_demonstrations(
    tasks: Sequence[Task],
    call_format: str = "hermes",
    reply: ReplyWriter = template_reply,
    calls_per_message: str = "one",
    require_success: bool = True,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Demonstration]:
    """Demonstrations of ``tasks`` (failures dropped when ``require_success``). With
    ``cache`` (a JSON Lines file) finished demonstrations are kept and reused, so an
    interrupted build (endpoint replies can be slow) resumes where it stopped."""
    done: dict[str, Demonstration] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                    done[record["task_id"]] = Demonstration(**record)
                except (ValueError, KeyError, TypeError):
                    break  # a half-written last line: rebuild from there
    out = []
    for number, task in enumerate(tasks, 1):
        demo = done.get(task.id)
        if demo is None or demo.call_format != call_format:
            demo = play_ground_truth(task, call_format, reply, calls_per_message)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with open(cache, "a", encoding="utf-8") as handle:
                    handle.write(demo.to_json() + "\n")
        if progress is not None:
            progress(number, len(tasks))
        if demo.reward == 1.0 or not require_success:
            out.append(demo)
    return out


# -- samples -------------------------------------------------------------------------------


@dataclass
class SFTSample:
    """Ids of one training sequence and the per-token mask of its targets."""

    input_ids: list[int]
    target_mask: list[int]

    @property
    def num_targets(self) -> int:
        return sum(self.target_mask)


def _to_sample(tokenized: TokenizedConversation, max_length: int) -> SFTSample | None:
    ids = tokenized.input_ids
    mask = [0] * len(tokenized.prompt_ids) + list(tokenized.loss_mask)
    if len(ids) > max_length:  # left truncation keeps the targets at the end
        ids, mask = ids[-max_length:], mask[-max_length:]
    if not any(mask[1:]):  # the first token is never a target (nothing predicts it)
        return None
    return SFTSample(ids, mask)


def sample_parts(tokenizer: Any, messages: Sequence[dict[str, Any]], mode: str) -> list[TokenizedConversation]:
    """One conversation's SFT sequences before truncation: one per assistant message, or the
    whole conversation (see the module docstring)."""
    if mode == "per_message":
        return tokenize_per_message(tokenizer, messages)
    return [tokenize_conversation(tokenizer, messages)]


def build_samples(
    tokenizer: Any, conversations: Sequence[Sequence[dict[str, Any]]], mode: str = "per_message", max_length: int = 8192
) -> list[SFTSample]:
    """SFT samples from conversations (see the module docstring for the two modes)."""
    if mode not in SAMPLE_MODES:
        raise ValueError(f"unknown SFT sample mode {mode!r}; valid: {', '.join(SAMPLE_MODES)}")
    samples = []
    for messages in conversations:
        for part in sample_parts(tokenizer, messages, mode):
            sample = _to_sample(part, max_length)
            if sample is not None:
                samples.append(sample)
    return samples


# -- loss and step -------------------------------------------------------------------------


def sft_loss_sum(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    target_mask: Any,
    start: int = 0,
    chunk_tokens: int | None = None,
) -> tuple[Any, Any]:
    """Summed next-token cross-entropy over target positions and the number of targets.
    ``target_mask`` is per input token (``[B, T]``); position t predicts token t+1. Log-probs
    are computed only from position ``start`` on (no target lies before ``start + 1``), in
    vocabulary chunks of ``chunk_tokens`` positions (:func:`trainers.logprobs.token_logprobs`,
    the one log-prob path of the trainer)."""
    from trainers.logprobs import LOGIT_CHUNK_TOKENS, token_logprobs

    logp, _ = token_logprobs(
        model, input_ids, attention_mask, start=start, chunk_tokens=chunk_tokens or LOGIT_CHUNK_TOKENS
    )
    mask = target_mask[:, 1:].to(logp.dtype)
    return -(logp * mask).sum(), mask.sum()


def sft_step(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    samples: Sequence[SFTSample],
    pad_id: int,
    micro_batch_tokens: int,
    max_grad_norm: float,
    autocast: Callable[[], Any] | None = None,
    total_targets: float | None = None,
    world: int = 1,
    token_sum: Callable[[float], float] | None = None,
    count_max: Callable[[int], int] | None = None,
    chunk_tokens: int | None = None,
) -> dict[str, float]:
    """One optimizer step on ``samples``: token-mean cross-entropy over the whole batch,
    accumulated over token-budget micro-batches, gradient clipping, AdamW, scheduler.

    Under data parallelism ``samples`` is this rank's share, ``total_targets`` the target
    count of all ranks and ``world`` their number (DDP averages gradients over ranks, so each
    rank's sum is scaled by ``world / total``: the result is the single-process gradient).
    ``count_max`` gives the ranks' largest micro-batch count: every rank runs that many
    backwards (zero-loss ones past its own), all but the last under ``no_sync``, so the
    gradient is all-reduced once. ``token_sum`` sums the reported loss over the ranks.
    ``chunk_tokens``: positions whose logits exist at once (trainers/logprobs.py)."""
    import torch

    from trainers.batching import accumulation_context, collate, pack_by_tokens, zero_backward

    local = sum(sample.num_targets - sample.target_mask[0] for sample in samples)
    total = total_targets if total_targets is not None else local
    model.train(True)
    optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    batches = pack_by_tokens([len(s.input_ids) for s in samples], micro_batch_tokens)
    count = count_max(len(batches)) if count_max is not None else len(batches)
    for number in range(count):
        with accumulation_context(model, number, count):
            if number >= len(batches):
                zero_backward(model, pad_id)
                continue
            indices = batches[number]
            ids, attention, _ = collate([(samples[i].input_ids, samples[i].target_mask) for i in indices], pad_id)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(indices):
                mask[row, : len(samples[i].target_mask)] = torch.tensor(samples[i].target_mask)
            with autocast() if autocast is not None else contextlib.nullcontext():
                first = min(samples[i].target_mask.index(1) for i in indices) - 1
                nll, _ = sft_loss_sum(model, ids, attention, mask, start=first, chunk_tokens=chunk_tokens)
            (nll * (world / max(total, 1))).backward()
            loss_sum += float(nll.detach())
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    lr = float(optimizer.param_groups[0]["lr"])  # the rate this step used
    if torch.isfinite(norm):
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if token_sum is not None:
        loss_sum = token_sum(loss_sum)
    return {"loss": loss_sum / max(total, 1), "grad_norm": float(norm), "trained_tokens": float(total), "lr": lr}
