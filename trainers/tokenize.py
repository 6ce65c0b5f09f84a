"""Conversations as training token ids: the one chat-template tokenisation SFT and rollouts share.

Layout (the paper's, docs/paper-methods.md §2.5 and §4.2), identical to what
:class:`trainers.rollout.RolloutDriver` produces when every message is supplied instead of
sampled — it is built with the same :class:`~toolenv.inference.template.ChatRenderer`::

    prompt      = template(messages before the first assistant message, generation header)
    assistant   = tokens(content) + [end_of_message_id]                  loss_mask 1
    observation = the template's text after the end-of-turn token up to
                  the next generation header (tool results, next user turn) loss_mask 0

``tool`` messages become ``user`` messages when the template has no tool role (SmolLM2's); a
template that rewrites earlier turns when the conversation grows is refused with a one-line
error rather than trained on ids the model never sees at rollout time. The end-of-turn id is
:func:`toolenv.inference.template.end_of_message_id`, the one the rollout driver appends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from toolenv.inference.template import ChatRenderer, end_of_message_id

#: the old name of :func:`~toolenv.inference.template.end_of_message_id` (trainers/train.py uses it)


@dataclass
class TokenizedConversation:
    """A conversation as ids: the untrained prompt, then assistant and observation segments.

    ``loss_mask[i]`` is 1 where ``completion_ids[i]`` belongs to an assistant message (its
    end-of-turn token included) and 0 on observation tokens. ``message_starts`` are the
    completion offsets where each assistant message's content begins."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    message_starts: list[int] = field(default_factory=list)

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


def encode(tokenizer: Any, text: str) -> list[int]:
    """Ids of already-templated text (no bos/eos added: the template wrote them)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, messages: Sequence[dict[str, Any]], renderer: ChatRenderer | None = None) -> list[int]:
    """The ids that ask for the next assistant message after ``messages``."""
    return (renderer or ChatRenderer(tokenizer)).prompt_ids(messages)


def assistant_ids(tokenizer: Any, content: str, eot: int | None = None) -> list[int]:
    """One assistant message as trained: its content tokens, then the end-of-turn id
    (``eot``, computed when not given; callers looping over messages pass it once)."""
    return encode(tokenizer, content) + [end_of_message_id(tokenizer) if eot is None else eot]


def observation_ids(
    renderer: ChatRenderer,
    before: Sequence[dict[str, Any]],
    content: str,
    new: Sequence[dict[str, Any]],
    header: bool = True,
    eot: int | None = None,
) -> list[int]:
    """Ids after assistant ``content`` (whose end-of-turn token is trained, so its text is
    removed here) up to the next generation header: the observation delta."""
    tokenizer = renderer.tokenizer
    delta = renderer.delta(
        [renderer.normalise(m) for m in before], content, [renderer.normalise(m) for m in new], None, header
    )
    closing = tokenizer.decode([end_of_message_id(tokenizer) if eot is None else eot])
    if not delta.startswith(closing):
        raise ValueError(f"the chat template does not close assistant messages with {closing!r}")
    rest = delta[len(closing) :]
    return renderer.encode(rest) if rest else []


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if message.get("tool_calls"):
        raise ValueError(
            "assistant messages with native tool_calls cannot be tokenised as text; "
            "use a text call format (hermes, python, xml, json_block)"
        )
    return content if isinstance(content, str) else ""


def tokenize_conversation(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> TokenizedConversation:
    """The whole conversation as one training sequence (see the module docstring); what
    follows the last assistant message is kept as an untrained observation, as in rollouts."""
    renderer = ChatRenderer(tokenizer)
    eot = end_of_message_id(tokenizer)
    messages = list(messages)
    positions = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not positions:
        raise ValueError("the conversation has no assistant message to train on")
    out = TokenizedConversation(prompt_ids(tokenizer, messages[: positions[0]], renderer))
    for k, index in enumerate(positions):
        if k > 0:
            previous = positions[k - 1]
            delta = observation_ids(
                renderer, messages[:previous], _content(messages[previous]), messages[previous + 1 : index], eot=eot
            )
            out.completion_ids += delta
            out.loss_mask += [0] * len(delta)
        out.message_starts.append(len(out.completion_ids))
        ids = assistant_ids(tokenizer, _content(messages[index]), eot)
        out.completion_ids += ids
        out.loss_mask += [1] * len(ids)
    # the template's closing after the last message (and any final observations), untrained:
    # the rollout driver ends an episode the same way
    last = positions[-1]
    tail = observation_ids(
        renderer, messages[:last], _content(messages[last]), messages[last + 1 :], header=False, eot=eot
    )
    out.completion_ids += tail
    out.loss_mask += [0] * len(tail)
    return out


def tokenize_per_message(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> list[TokenizedConversation]:
    """One sample per assistant message: the templated conversation before it as the prompt,
    the message (plus end-of-turn) as the only trained part — the paper's per-message SFT pairs."""
    renderer = ChatRenderer(tokenizer)
    eot = end_of_message_id(tokenizer)
    samples = []
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            ids = assistant_ids(tokenizer, _content(message), eot)
            samples.append(
                TokenizedConversation(prompt_ids(tokenizer, messages[:index], renderer), ids, [1] * len(ids), [0])
            )
    return samples
