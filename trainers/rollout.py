"""Multi-turn rollouts: many BFCL episodes driven in lockstep by one token engine.

Each round, every unfinished episode needs one assistant message; all of them go to the
engine in *one* ``generate`` call; then each environment is stepped with the decoded text.
This repeats until every episode has ended. The output is one :class:`~trainers.types.Rollout`
per episode.

Token sequence (token-in / token-out)
    ``prompt_ids`` = the chat template of the environment's first messages (system prompt with
    the call format's tool listing, first user turn) with the generation header
    (``<|im_start|>assistant\\n``), tokenised once. ``completion_ids`` then alternates:

    - the ids the engine sampled for an assistant message, **verbatim** (the stop token
      included): ``loss_mask`` 1, ``sample_logprobs`` = the engine's log-probs;
    - the *observation delta*: ``loss_mask`` 0, log-probs 0.0. It is the text the chat
      template adds when the new messages (tool results, the next user turn) are appended,
      up to and including the next generation header, tokenised on its own. Concretely, with
      ``before`` = template(messages so far, generation header) and ``content`` = the text
      the environment received, ``after`` = template(messages + assistant(content) + new
      messages, generation header unless the episode ended) must start with
      ``before + content`` (a clear error otherwise: the template is not prefix-stable), and
      the delta is ``after[len(before + content):]``. That text starts with the template's
      end-of-message marker (``<|im_end|>\\n`` for ChatML); when the engine *sampled* that
      marker (``finish_reason == "stop"``) its text is removed from the delta so the stop
      token is not doubled. When generation stopped on length (or on another stop token,
      e.g. ``<|endoftext|>``), the whole closing stays in the delta: the sequence is then
      well formed, and the closing tokens are observations (mask 0), never trained.

    The assistant text given to the environment (and to the template) is
    ``decode(sampled ids, skip_special_tokens=True)``. So ``decode(prompt_ids +
    completion_ids)`` equals the chat template of the whole conversation, except where a
    message's sampled ids contain special tokens before its end (they are in the ids, not in
    the text) and where tokenising a piece on its own differs from tokenising the whole text
    (the sequence keeps what was sampled; that is the point).

    The chat template is rendered by :class:`~toolenv.inference.template.ChatRenderer`, the
    same renderer the evaluation's chat models use: templates without a ``tool`` role
    (SmolLM2's) get tool results as ``user`` messages. Templates that render ``tools=`` get them only
    when ``tools_via_template`` is set (the environment's system prompt is then dropped and
    the template writes its own tool prompt; the call format must match it, e.g. hermes for
    Qwen2.5); by default the call format's system prompt carries the tools, which works with
    every template.

Budgets (:class:`Budgets`)
    ``max_new_tokens`` per assistant message (``SamplingParams.max_new_tokens``; a message
    cut by it goes to the environment as it is, like a capped API reply), ``max_total_tokens``
    for prompt + completion, ``max_messages`` assistant messages per episode. Running out of
    the total or the message budget before the environment ends the episode truncates it:
    ``truncated=True``, ``reward=0.0``, ``meta["truncation"]`` says which budget.

Hooks (for the supervision methods; both optional, per episode, in :class:`EpisodeSpec`)
    ``replace(ctx) -> str | list[int] | None`` is called before each assistant message; a
    non-None result is used *instead of* sampling: text is tokenised and the end-of-message
    token appended; ids are used as given (if they do not end with a stop id, the template's
    closing is appended as an observation, as for a length stop). Replaced tokens have mask 1
    (they are assistant tokens, trained by SFT-style losses) and log-prob 0.0 (nothing was
    sampled); their spans are ``meta["replaced_spans"]`` (half-open, completion indices).
    ``source`` becomes ``"ground_truth"`` when every message was replaced, ``"mixed"`` when
    some were (``EpisodeSpec.source`` overrides).

    ``prompt_edit(messages) -> messages`` edits the first messages *for generation only*
    (e.g. a hint in the system message): the engine sees ``edited prompt + completion``,
    while ``prompt_ids`` (and so ``input_ids``) stay hint-free; the sampled ids are appended
    to the hint-free sequence. ``sample_logprobs`` are then log-probs under the *hinted*
    context; ``meta["generation_prompt_ids"]`` keeps that prompt.

Rollout fields
    ``reward``: the environment's final reward (the BFCL entry score, 1.0 or 0.0), 0.0 for an
    episode cut by a budget. ``truncated``: the episode did not end normally (a budget, or
    BFCL's per-turn step limit, which the environment still scores). ``source``: see the
    hooks. ``trajectory``: the environment's text-level record. ``meta``:

    - ``num_messages``: assistant messages produced (sampled or replaced);
    - ``finish_reasons``: per message, ``"stop"`` (ended with a sampled stop id) or ``"length"``;
    - ``truncation``: ``None``, ``"env"`` (step limit), ``"max_messages"`` or ``"max_total_tokens"``;
    - ``replaced_spans``: ``[(start, end), ...]`` of replaced messages in ``completion_ids``;
    - ``generation_prompt_ids``: only with ``prompt_edit``, the prompt the engine saw.

Seeds
    Message m of episode (group g, sample s) is sampled with seed
    ``message_seed(seed, g, s, m)``; environments are reset with ``seed + g``. The same
    inputs give the same rollouts (exactly on the HF engine in either mode, up to vLLM's
    batch numerics on vLLM).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any, Callable, Sequence

from toolenv.inference.template import ChatRenderer, end_of_message_id, stop_token_ids
from toolenv.inference.types import Generation, SamplingParams, TokenEngine
from trainers.types import Rollout

#: called before each assistant message; returns text or ids to use instead of sampling, or None
ReplaceHook = Callable[["ReplaceContext"], "str | Sequence[int] | None"]
#: edits the first messages for generation only (a copy is passed)
PromptEdit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Budgets:
    """Episode budgets (see the module docstring)."""

    max_total_tokens: int = 4096
    max_messages: int = 32


@dataclass
class EpisodeSpec:
    """One episode to play: a task, its position in the batch, optional hooks."""

    task_id: str
    group: int = 0
    sample: int = 0
    replace: ReplaceHook | None = None
    prompt_edit: PromptEdit | None = None
    source: str | None = None  # overrides the derived source ("policy" / "mixed" / "ground_truth")


@dataclass(frozen=True)
class ReplaceContext:
    """What a replace hook sees: the episode, the index of the assistant message about to be
    produced, and the conversation so far (copies)."""

    spec: EpisodeSpec
    message_index: int
    messages: list[dict[str, Any]]
    env: Any


def message_seed(seed: int, group: int, sample: int, message: int) -> int:
    """A deterministic 31-bit seed per (run seed, group, sample, message)."""
    digest = hashlib.blake2b(f"{seed}/{group}/{sample}/{message}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


# -- episodes ------------------------------------------------------------------------------


@dataclass
class _Episode:
    spec: EpisodeSpec
    env: Any
    tools: Any
    messages: list[dict[str, Any]]  # normalised conversation as rendered
    prompt_ids: list[int]
    generation_prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    n_messages: int = 0
    replaced_spans: list[tuple[int, int]] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    done: bool = False
    truncation: str | None = None
    reward: float = 0.0

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)

    def append(self, ids: Sequence[int], mask: int, logprobs: Sequence[float] | None = None) -> None:
        self.completion_ids.extend(ids)
        self.loss_mask.extend([mask] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))


def default_env_factory(call_format: str = "hermes", **kwargs: Any) -> Callable[[str], Any]:
    """Builds one ``BFCLEnv`` per episode with ``observation_mode="messages"``."""

    def make(task_id: str) -> Any:
        from toolenv.env import BFCLEnv

        return BFCLEnv(task_ids=[task_id], call_format=call_format, observation_mode="messages", **kwargs)

    return make


class RolloutDriver:
    """Plays episodes with a :class:`~toolenv.inference.types.TokenEngine` (see the module docstring).

    ``env_factory(task_id)`` returns a fresh environment whose ``reset`` gives chat messages
    (``BFCLEnv(observation_mode="messages")``; any call format).
    """

    def __init__(
        self,
        engine: TokenEngine,
        tokenizer: Any = None,
        env_factory: Callable[[str], Any] | None = None,
        sampling: SamplingParams = SamplingParams(),
        budgets: Budgets = Budgets(),
        tools_via_template: bool = False,
        seed: int = 0,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer if tokenizer is not None else engine.tokenizer
        self.renderer = ChatRenderer(self.tokenizer, tools_via_template)
        self.env_factory = env_factory or default_env_factory()
        self.sampling = sampling
        self.budgets = budgets
        self.seed = seed
        stop = getattr(engine, "stop_ids", None)
        self.stop_ids = list(stop) if stop is not None else stop_token_ids(self.tokenizer)
        #: the id appended after replaced text: the template's end-of-message token (a template
        #: that is not prefix-stable is refused here, before any episode starts)
        self.end_of_message_id = end_of_message_id(self.tokenizer, self.stop_ids, self.renderer)
        #: engine calls and sampled tokens of the last ``run`` (for benchmarks)
        self.stats: dict[str, Any] = {}

    # -- public --------------------------------------------------------------------------

    def run(self, specs: Sequence[EpisodeSpec], finished: Callable[[int], None] | None = None) -> list[Rollout]:
        """Play every episode to its end; one rollout per spec, in order. ``finished(count)``
        is told after each round how many episodes have ended so far (a progress bar)."""
        episodes = [self._start(spec) for spec in specs]
        self.stats = {"engine_calls": 0, "sampled_tokens": 0, "rounds": 0}
        while True:
            pending = [e for e in episodes if not e.done]
            if finished is not None:
                finished(len(episodes) - len(pending))
            if not pending:
                break
            self.stats["rounds"] += 1
            self._round(pending)
        return [self._rollout(e) for e in episodes]

    def rollouts(
        self, task_ids: Sequence[str], n: int = 1, finished: Callable[[int], None] | None = None
    ) -> list[Rollout]:
        """``n`` samples of each task (groups in task order, samples 0..n-1)."""
        specs = [EpisodeSpec(task_id, group, sample) for group, task_id in enumerate(task_ids) for sample in range(n)]
        return self.run(specs, finished)

    def first_prompt_ids(self, task_id: str) -> list[int]:
        """The token ids of ``task_id``'s first prompt, as an episode of it starts (environment
        reset, first messages, chat template): what the recipe checks measure."""
        return list(self._start(EpisodeSpec(task_id, 0, 0)).prompt_ids)

    # -- internals ---------------------------------------------------------------------------

    def _start(self, spec: EpisodeSpec) -> _Episode:
        env = self.env_factory(spec.task_id)
        observation, info = env.reset(seed=self.seed + spec.group, options={"task_id": spec.task_id})
        if not isinstance(observation, list):
            raise ValueError("rollouts need an environment with observation_mode='messages'")
        messages = self.renderer.first_messages(observation)
        tools = info.get("tools")
        prompt_ids = self.renderer.encode(self.renderer.render(messages, tools, generation_header=True))
        generation_prompt_ids = prompt_ids
        if spec.prompt_edit is not None:
            edited = spec.prompt_edit([dict(m) for m in messages])
            generation_prompt_ids = self.renderer.encode(self.renderer.render(edited, tools, generation_header=True))
        return _Episode(spec, env, tools, messages, prompt_ids, generation_prompt_ids)

    def _round(self, pending: list[_Episode]) -> None:
        produced: dict[int, tuple[Generation, bool]] = {}  # episode position → (generation, replaced)
        to_sample: list[tuple[int, _Episode, int]] = []  # (position, episode, allowed new tokens)
        for position, episode in enumerate(pending):
            room = self.budgets.max_total_tokens - episode.length
            if room <= 0:
                self._truncate(episode, "max_total_tokens")
                continue
            replacement = None
            if episode.spec.replace is not None:
                context = ReplaceContext(
                    episode.spec, episode.n_messages, [dict(m) for m in episode.messages], episode.env
                )
                replacement = episode.spec.replace(context)
            if replacement is not None:
                produced[position] = (self._replacement(replacement), True)
            else:
                to_sample.append((position, episode, room))
        if to_sample:
            prompts = [e.generation_prompt_ids + e.completion_ids for _, e, _ in to_sample]
            params = [
                dc_replace(
                    self.sampling,
                    max_new_tokens=min(self.sampling.max_new_tokens, room),
                    seed=message_seed(self.seed, e.spec.group, e.spec.sample, e.n_messages),
                )
                for _, e, room in to_sample
            ]
            generations = self.engine.generate(prompts, params)
            self.stats["engine_calls"] += 1
            self.stats["sampled_tokens"] += sum(len(g.token_ids) for g in generations)
            for (position, _, _), generation in zip(to_sample, generations):
                produced[position] = (generation, False)
        for position, episode in enumerate(pending):
            if position in produced:
                generation, replaced = produced[position]
                self._advance(episode, generation, replaced)

    def _replacement(self, value: str | Sequence[int]) -> Generation:
        if isinstance(value, str):
            ids = self.renderer.encode(value) + [self.end_of_message_id]
        else:
            ids = [int(t) for t in value]
        finish = "stop" if ids and ids[-1] in self.stop_ids else "length"
        return Generation(ids, [0.0] * len(ids), finish)

    def _advance(self, episode: _Episode, generation: Generation, replaced: bool) -> None:
        ids = list(generation.token_ids)
        start = len(episode.completion_ids)
        episode.append(ids, 1, list(generation.logprobs) if not replaced else None)
        if replaced:
            episode.replaced_spans.append((start, len(episode.completion_ids)))
        episode.n_messages += 1
        stopped = generation.finish_reason == "stop" and bool(ids) and ids[-1] in self.stop_ids
        episode.finish_reasons.append("stop" if stopped else "length")
        content = self.tokenizer.decode(ids, skip_special_tokens=True)
        observation, reward, terminated, truncated, _ = episode.env.step(content)
        ended = terminated or truncated
        new = [self.renderer.normalise(m) for m in observation]
        out_of_messages = not ended and episode.n_messages >= self.budgets.max_messages
        delta = self.renderer.delta(
            episode.messages, content, new, episode.tools, header=not (ended or out_of_messages)
        )
        if stopped:
            closing = self.tokenizer.decode([ids[-1]])
            if delta.startswith(closing):
                delta = delta[len(closing) :]
        episode.append(self.renderer.encode(delta) if delta else [], 0)
        episode.messages.append({"role": "assistant", "content": content})
        episode.messages.extend(new)
        if ended:
            episode.done = True
            episode.reward = float(reward)
            if truncated:
                episode.truncation = "env"  # BFCL's per-turn step limit: the env scored it
        elif out_of_messages:
            self._truncate(episode, "max_messages")
        elif episode.length >= self.budgets.max_total_tokens:
            self._truncate(episode, "max_total_tokens")

    def _truncate(self, episode: _Episode, reason: str) -> None:
        episode.done = True
        episode.truncation = reason
        episode.reward = 0.0

    def _rollout(self, episode: _Episode) -> Rollout:
        spec = episode.spec
        if spec.source is not None:
            source = spec.source
        elif not episode.replaced_spans:
            source = "policy"
        else:
            source = "ground_truth" if len(episode.replaced_spans) == episode.n_messages else "mixed"
        trajectory = episode.env.trajectory
        meta: dict[str, Any] = {
            "num_messages": episode.n_messages,
            "finish_reasons": episode.finish_reasons,
            "truncation": episode.truncation,
            "replaced_spans": list(episode.replaced_spans),
        }
        if episode.generation_prompt_ids is not episode.prompt_ids:
            meta["generation_prompt_ids"] = list(episode.generation_prompt_ids)
        return Rollout(
            task_id=spec.task_id,
            group=spec.group,
            sample=spec.sample,
            prompt_ids=list(episode.prompt_ids),
            completion_ids=list(episode.completion_ids),
            loss_mask=list(episode.loss_mask),
            sample_logprobs=list(episode.logprobs),
            reward=episode.reward,
            trajectory=trajectory,
            truncated=episode.truncation is not None,
            source=source,
            meta=meta,
        )


# -- trainer batches -----------------------------------------------------------------------


def to_batch(
    rollouts: Sequence[Rollout],
    pad_id: int,
    max_length: int | None = None,
    truncation: str = "right",
    device: Any = None,
) -> dict[str, Any]:
    """Right-padded tensors for the trainer, aligned on ``input_ids`` positions:

    - ``input_ids`` [B, L], ``attention_mask`` [B, L] (1 on real tokens);
    - ``loss_mask`` [B, L]: 1 where token t is a trained (sampled) token; the prompt and
      padding are 0. The logits predicting token t are at position t-1 (shift as usual);
    - ``old_logprobs`` [B, L] float32: the sampling log-prob of token t (0.0 where
      ``loss_mask`` is 0);
    - ``rewards`` [B], ``truncated`` [B] (bool: the rollout was cut here, or by its budgets).

    ``truncation`` decides rows longer than ``max_length``: ``"right"`` cuts their end (the
    prompt is kept; the cut part is not trained), ``"error"`` raises ValueError. A prompt that
    alone exceeds ``max_length`` always raises.
    """
    import torch

    if truncation not in ("right", "error"):
        raise ValueError(f"unknown truncation {truncation!r}; valid: right, error")
    rows = []
    for rollout in rollouts:
        ids = rollout.prompt_ids + rollout.completion_ids
        mask = [0] * len(rollout.prompt_ids) + list(rollout.loss_mask)
        logprobs = [0.0] * len(rollout.prompt_ids) + list(rollout.sample_logprobs)
        cut = False
        if max_length is not None and len(ids) > max_length:
            if truncation == "error" or len(rollout.prompt_ids) >= max_length:
                raise ValueError(
                    f"rollout {rollout.task_id}/{rollout.sample} has {len(ids)} tokens "
                    f"(prompt {len(rollout.prompt_ids)}), more than max_length={max_length}"
                )
            ids, mask, logprobs, cut = ids[:max_length], mask[:max_length], logprobs[:max_length], True
        rows.append((ids, mask, logprobs, cut or rollout.truncated))
    from trainers.batching import attention_mask, pad_right

    input_ids = pad_right([r[0] for r in rows], int(pad_id), torch.long)
    width = input_ids.shape[1]
    attention = attention_mask([len(r[0]) for r in rows], width)
    loss_mask = pad_right([r[1] for r in rows], 0, torch.long, width)
    old = pad_right([r[2] for r in rows], 0.0, torch.float32, width)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention,
        "loss_mask": loss_mask,
        "old_logprobs": old,
        "rewards": torch.tensor([r.reward for r in rollouts], dtype=torch.float32),
        "truncated": torch.tensor([row[3] for row in rows], dtype=torch.bool),
    }
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch
