"""The chat template: rendering, the one tool→user role mapping, and the ids that end a message.

Everything that turns chat messages into token ids for a local model goes through
:class:`ChatRenderer`, so evaluation, validation, rollouts and SFT see the same text:

- :func:`template_message` is the message as a template gets it. Templates without a ``tool``
  role (SmolLM2's) get tool results as ``user`` messages, as Qwen renders tool results inside a
  user turn;
- :func:`stop_token_ids` are the ids that stop generation (eos and the common end-of-turn tokens);
- :func:`end_of_message_id` is the one id that closes an assistant message: what SFT trains as
  the last target, what a replaced message gets appended, what the probes call ``p_eot``.

Only the tokenizer object is used (``apply_chat_template``, ``get_vocab``, ``decode``):
nothing here imports transformers.
"""

from __future__ import annotations

from typing import Any, Sequence

#: end-of-turn tokens of the common chat templates (ChatML, Llama 3, GPT-2 style, Gemma)
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>")


def template_message(message: dict[str, Any], keep_tool_role: bool) -> dict[str, Any]:
    """``message`` as a chat template (or a server) gets it: role, with ``tool`` as ``user``
    unless ``keep_tool_role``, and text content (``None`` becomes ``""``)."""
    role = message["role"]
    if role == "tool" and not keep_tool_role:
        role = "user"
    return {"role": role, "content": message.get("content") or ""}


def stop_token_ids(tokenizer: Any, model_config: Any = None) -> list[int]:
    """The ids that end an assistant message: the tokenizer's eos, the model's generation eos
    ids, and the common end-of-turn tokens present in the vocabulary (``<|im_end|>``,
    ``<|eot_id|>``, ``<|endoftext|>``, ``<end_of_turn>``)."""
    ids: list[int] = []

    def add(value: Any) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    add(getattr(model_config, "eos_token_id", None) if model_config is not None else None)
    vocab = tokenizer.get_vocab()
    for name in END_OF_TURN_TOKENS:
        if name in vocab:
            add(vocab[name])
    return ids


#: the context after which :meth:`ChatRenderer.delta` renders new messages when the template
#: is not prefix-stable (one user message, then a plain reply without reasoning)
PREFIX_CONTEXT: tuple[dict[str, Any], ...] = ({"role": "user", "content": "x"},)
_NEUTRAL_REPLY = "y"


class ChatRenderer:
    """Chat-template rendering and the observation deltas of token-faithful rollouts
    (:mod:`trainers.rollout` documents how they are used)."""

    def __init__(self, tokenizer: Any, tools_via_template: bool = False) -> None:
        template = tokenizer.chat_template or ""
        if not template:
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.keep_tool_role = "tool" in template
        self.supports_tools = "tools" in template
        if tools_via_template and not self.supports_tools:
            raise ValueError("tools_via_template: this tokenizer's chat template does not render tools")
        self.tools_via_template = tools_via_template

    def normalise(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message as the template gets it (:func:`template_message`)."""
        return template_message(message, self.keep_tool_role)

    def render(self, messages: Sequence[dict[str, Any]], tools: Any, generation_header: bool) -> str:
        kwargs: dict[str, Any] = {}
        if self.tools_via_template:
            kwargs["tools"] = tools
        return self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=generation_header, tokenize=False, **kwargs
        )

    def encode(self, text: str) -> list[int]:
        """Ids of already-templated text (no bos/eos added: the template wrote them)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[dict[str, Any]], tools: Any = None) -> list[int]:
        """The ids that ask for the next assistant message after ``messages``."""
        return self.encode(self.render([self.normalise(m) for m in messages], tools, generation_header=True))

    def first_messages(self, observation: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = [self.normalise(m) for m in observation]
        if self.tools_via_template and messages and messages[0]["role"] == "system":
            messages = messages[1:]  # the template writes its own tool prompt
        return messages

    def delta(
        self, messages: Sequence[dict[str, Any]], content: str, new: Sequence[dict[str, Any]], tools: Any, header: bool
    ) -> str:
        """The text after ``content`` when ``assistant(content)`` and ``new`` are appended to
        ``messages`` (closing of the assistant message, the new messages, the next header).

        A template that re-renders earlier messages when the conversation grows (Qwen3 drops
        the ``<think>`` blocks of assistant messages before the last user message) is not
        prefix-stable: there the delta is rendered after a short fixed context instead of the
        conversation (:data:`PREFIX_CONTEXT`), the prefix-preserving rendering TRL's training
        templates and verl's agent loop use: the training sequence keeps every message as
        sampled, reasoning included, and each observation as the template writes it. It is
        exact for templates whose rendering of new messages does not depend on earlier
        content (every common one); a template for which even that changes earlier text is
        refused."""
        before = self.render(messages, tools, generation_header=True) + content
        after = self.render(list(messages) + [{"role": "assistant", "content": content}] + list(new), tools, header)
        if after.startswith(before):
            return after[len(before) :]
        context = [*PREFIX_CONTEXT, {"role": "assistant", "content": _NEUTRAL_REPLY}]
        before = self.render(PREFIX_CONTEXT, tools, generation_header=True) + _NEUTRAL_REPLY
        after = self.render(context + list(new), tools, header)
        if not after.startswith(before):
            raise ValueError(
                "the chat template is not prefix-stable (rendering a longer conversation changed "
                "earlier text, even after a fixed context); token-faithful multi-turn rollouts need one that is"
            )
        return after[len(before) :]

    def prefix_preserving(self, tools: Any = None) -> bool:
        """Whether the template re-renders earlier messages, so that :meth:`delta` renders after
        the fixed context (True for Qwen3-style templates; False for ChatML, Llama 3, SmolLM2)."""
        thinking = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>\nb\n</think>\n\nc"}]
        before = self.render(thinking[:1], tools, generation_header=True) + thinking[1]["content"]
        after = self.render([*thinking, {"role": "user", "content": "d"}], tools, generation_header=True)
        return not after.startswith(before)

    def closing(self) -> str:
        """The text the template writes right after an assistant message's content (ChatML:
        ``<|im_end|>\\n``); ValueError when the template is not prefix-stable."""
        return self.delta([{"role": "user", "content": "x"}], "y", [], None, header=False)


def end_of_message_id(
    tokenizer: Any, stop_ids: Sequence[int] | None = None, renderer: ChatRenderer | None = None
) -> int:
    """The id that closes an assistant message.

    It is the first of ``stop_ids`` (default :func:`stop_token_ids`) whose text begins the
    template's closing of an assistant message (:meth:`ChatRenderer.closing`), so SFT targets,
    replaced messages and sampled stops agree on one id. When no stop id matches, or the
    tokenizer has no usable template, it is ``<|im_end|>`` where the vocabulary has it (Qwen,
    SmolLM2), else the tokenizer's eos, else the first stop id. A ``renderer`` that is given
    is used as it is: its error for a template that is not prefix-stable propagates (the
    rollout driver refuses such a template when it is built)."""
    candidates = list(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)
    closing = None
    if renderer is not None:
        closing = renderer.closing()
    else:
        try:
            closing = ChatRenderer(tokenizer).closing()
        except ValueError:  # no template, or one that is not prefix-stable: use the vocabulary
            closing = None
    if closing is not None:
        for token in candidates:
            if closing.startswith(tokenizer.decode([token])):
                return int(token)
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        return int(vocab["<|im_end|>"])
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    if candidates:
        return int(candidates[0])
    raise ValueError("the tokenizer has neither <|im_end|> nor an eos token: no end-of-turn id")
