"""The BFCL episode behind the verifiers adapter, without verifiers: task rows, one rollout's
episode, and the oracle replies.

:class:`BFCLEpisode` is the rollout state of one verifiers rollout: it owns a fresh
:class:`toolenv.env.BFCLEnv` (``observation_mode="messages"``) for one task and nothing else,
so two rollouts of one task never share backend state. Its three members are the contract of
a multi-turn environment:

- :meth:`BFCLEpisode.env_response` steps the env with the assistant's text and returns the
  observation messages (tool results, or the next scripted user turn with any miss_func
  reveal), all as ``user`` messages (a chat endpoint takes no ``tool`` message without a
  ``tool_call_id``; toolenv's own templates without a ``tool`` role do the same:
  :func:`toolenv.inference.template.template_message`);
- :attr:`BFCLEpisode.is_completed` is True once the env ended the episode (the last turn's
  reply, or BFCL's per-turn step limit);
- :attr:`BFCLEpisode.reward` is the env's final reward, the BFCL checker's entry score (0/1).

The episode loop, the executor, the step limit and the checker are the env's: nothing here
parses or runs a call, and model text is never evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from toolenv.data import CATEGORIES, Task
from toolenv.env import BFCLEnv
from toolenv.executor import keyword_call
from toolenv.formats import get_codec
from toolenv.inference.template import template_message
from toolenv.selection import select_tasks

#: call formats whose assistant output is plain text (``openai`` needs native ``tool_calls``)
TEXT_FORMATS = ("hermes", "python", "xml", "json_block")


def check_call_format(call_format: str) -> str:
    """``call_format`` if the adapter plays it; a one-line ValueError otherwise."""
    if call_format not in TEXT_FORMATS:
        raise ValueError(
            f"call_format {call_format!r} is not played through verifiers' chat harness "
            f"(its replies are text); valid: {', '.join(TEXT_FORMATS)}"
        )
    return call_format


def as_user(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` as ``{"role", "content"}`` dicts with ``tool`` results as ``user`` messages."""
    return [template_message(message, keep_tool_role=False) for message in messages]


@dataclass(frozen=True)
class TaskRow:
    """One task as a prompt: the env's system message (the tools in the call format) and the
    first user turn, as ``BFCLEnv.reset`` gives them."""

    task_id: str
    category: str
    system_prompt: str
    prompt: list[dict[str, Any]]
    call_format: str
    data_version: str


def task_rows(
    categories: Sequence[str] | str | None = None,
    split: str = "all",
    limit: int | None = None,
    task_ids: Sequence[str] | None = None,
    call_format: str = "hermes",
    data_version: str | None = None,
) -> list[TaskRow]:
    """The selected BFCL tasks (toolenv's selection rules, in its order; ``limit`` keeps the
    first ``limit``), each with the prompt its episode starts from."""
    check_call_format(call_format)
    tasks = select_tasks(categories or CATEGORIES, split, task_ids=task_ids, data_version=data_version)
    return [task_row(task, call_format) for task in tasks[:limit]]


def task_row(task: Task, call_format: str = "hermes") -> TaskRow:
    """The prompt of ``task``'s episode: reset a throwaway env and read its first messages."""
    env = BFCLEnv(tasks=[task], call_format=call_format, observation_mode="messages")
    observation, _ = env.reset(options={"task_id": task.id})
    system = [m["content"] for m in observation if m["role"] == "system"]
    return TaskRow(
        task_id=task.id,
        category=task.category,
        system_prompt="\n\n".join(system),
        prompt=as_user([m for m in observation if m["role"] != "system"]),
        call_format=call_format,
        data_version=task.release,
    )


class BFCLEpisode:
    """One rollout of one task: a fresh ``BFCLEnv`` reset to the task (see the module docstring).

    ``first_messages`` holds what the reset returned (system message, first user turn);
    ``info`` the env's ``info`` of the last reset or step (``verdict`` once completed)."""

    def __init__(self, task_id: str, call_format: str = "hermes", data_version: str | None = None) -> None:
        self.env = BFCLEnv(
            task_ids=[task_id],
            call_format=check_call_format(call_format),
            observation_mode="messages",
            data_version=data_version,
        )
        self.first_messages, self.info = self.env.reset(options={"task_id": task_id})
        self.task_id = task_id
        self.is_completed = False
        self.truncated = False
        self.reward = 0.0
        self.num_steps = 0

    def env_response(self, assistant_text: str) -> list[dict[str, Any]]:
        """Step the env with one assistant message; the new messages, as ``user`` messages
        (empty once the episode is completed). RuntimeError after the end."""
        if self.is_completed:
            raise RuntimeError(f"the episode of {self.task_id} is completed; start a new BFCLEpisode")
        observation, reward, terminated, truncated, self.info = self.env.step(assistant_text)
        self.num_steps += 1
        if terminated or truncated:
            self.is_completed = True
            self.truncated = bool(truncated)
            self.reward = float(reward)
        return as_user(observation)

    @property
    def verdict(self) -> dict[str, Any] | None:
        """The checker's episode verdict (``None`` until completed)."""
        return self.info.get("verdict")


def oracle_replies(task: Task, call_format: str = "hermes") -> list[str]:
    """The ground truth as assistant messages: per turn, one message with that turn's calls
    (none for an empty turn), then the reply ``"Done."`` that closes the turn."""
    codec = get_codec(call_format)
    replies: list[str] = []
    for turn in task.ground_truth_calls:
        if turn:
            replies.append(codec.render_calls([keyword_call(c, task.involved_classes, task.release) for c in turn]))
        replies.append("Done.")
    return replies
