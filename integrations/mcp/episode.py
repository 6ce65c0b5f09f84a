"""One MCP session's BFCL episode: MCP tool calls and turn ends as ``BFCLEnv`` actions.

This module has no MCP dependency: it is the whole mapping, testable on its own, and the server
(:mod:`integrations.mcp.server`) only translates it to the wire.

- A BFCL tool call is one assistant message with one ``tool_calls`` entry, passed to
  ``env.step``; the tool's result text is the env's observation for it (the exact BFCL result
  text, or the executor's error text for an unknown tool, wrong arguments and the like).
- ``end_turn(reply)`` is the assistant message without calls that closes a BFCL user turn; it
  returns the next user turn (a miss_func reveal turn adds the held-out tools) or, after the
  last turn, the checker's verdict and reward.

Nothing here executes a call or keeps episode state of its own: the env (its codec, executor,
checker and step limit) does all of that, so the episode is exactly ``BFCLEnv``'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from toolenv.data import Task, get_task
from toolenv.env import BFCLEnv
from toolenv.executor import ERROR_PREFIX
from toolenv.formats import ToolSpec
from toolenv.formats.base import PARSE_ERROR_PREFIX

#: the longest arguments object accepted, as JSON characters: ``BFCLEnv``'s default bound on a
#: text action, applied to the JSON form of an MCP call (no BFCL call comes near it)
MAX_ARGUMENTS_CHARS = 1_000_000
#: the observation mode and call format every session's env runs in: result messages carry the
#: raw result text, and a reply without ``tool_calls`` always closes the turn
ENV_DEFAULTS: dict[str, Any] = {"observation_mode": "messages", "call_format": "openai"}


class EpisodeError(ValueError):
    """A request the episode refuses without taking a step (the message says why)."""


@dataclass(frozen=True)
class ToolOutcome:
    """What one BFCL tool call returned: the result text, and whether it is an error result."""

    text: str
    is_error: bool
    #: the call made BFCL force-quit the episode (more tool steps in one turn than its limit)
    truncated: bool = False


@dataclass(frozen=True)
class TurnOutcome:
    """What ``end_turn`` returned: the next user turn's text, or the end of the episode."""

    text: str
    done: bool
    #: the turn that opened revealed held-out tools (miss_func): the tool list changed
    tools_changed: bool


def env_kwargs(call_format: str | None = None, **options: Any) -> dict[str, Any]:
    """The ``BFCLEnv`` arguments of a session: :data:`ENV_DEFAULTS`, a call format (it sets only
    the prompt texts: the reveal message and the ``system`` prompt), then ``options``."""
    return {**ENV_DEFAULTS, **({"call_format": call_format} if call_format else {}), **options}


def load_task(task_id: str, **kwargs: Any) -> Task:
    """The task a server plays, as its sessions' envs play it (an OOD variant when ``kwargs``
    set ``ood``). Building one env checks every option before the server starts, in one line."""
    env = BFCLEnv(tasks=[get_task(task_id)], **kwargs)
    env.reset(options={"task_id": task_id})
    assert env.task is not None
    return env.task


class Episode:
    """One BFCL episode behind one MCP session (never shared between sessions).

    ``task`` is an immutable :class:`~toolenv.data.Task` (safe to share); the env built here
    owns fresh backends, so two episodes of one task never see each other's state.
    """

    def __init__(self, task: Task, kwargs: Mapping[str, Any] | None = None) -> None:
        # ood is already applied to `task` (load_task): the env must not build the variant again
        options = {key: value for key, value in (kwargs or {}).items() if key not in ("ood", "ood_seed")}
        self.env = BFCLEnv(tasks=[task], **{**ENV_DEFAULTS, **options})
        self._observation, self._info = self.env.reset(options={"task_id": task.id})
        self._steps = 0
        self._done = False
        self._reward: float | None = None
        self._verdict: dict[str, Any] | None = None
        self._truncated = False

    # -- what a client reads ------------------------------------------------------------------

    @property
    def task(self) -> Task:
        assert self.env.task is not None
        return self.env.task

    @property
    def done(self) -> bool:
        return self._done

    @property
    def tools(self) -> list[ToolSpec]:
        """The tools offered so far (held-out miss_func tools join when revealed)."""
        return list(self.env.tools)

    @property
    def system_prompt(self) -> str:
        """The env's system message: the tools as the call format renders them, for clients
        that prompt a model themselves."""
        return str(self._system_message().get("content") or "")

    def _system_message(self) -> dict[str, Any]:
        assert self.env.trajectory is not None
        return self.env.trajectory.messages[0]

    @property
    def turn(self) -> int:
        """The index of the user turn being played (``num_turns`` once the episode is over)."""
        assert self.env.trajectory is not None
        return self.env.trajectory.turns[-1].index if not self._done else len(self.task.turns)

    def turn_messages(self) -> list[dict[str, Any]]:
        """The user message(s) of the current turn (those of the last turn once over)."""
        assert self.env.trajectory is not None
        return [dict(message) for message in self.env.trajectory.turns[-1].user]

    def turn_text(self) -> str:
        """The current user turn as one text."""
        return "\n\n".join(str(m.get("content") or "") for m in self.turn_messages())

    def state(self) -> dict[str, Any]:
        """Where the episode stands: task, turn, done, and (once over) reward and verdict."""
        task = self.task
        state: dict[str, Any] = {
            "task_id": task.id,
            "category": task.category,
            "data_version": task.data_version,
            "turn": self.turn,
            "num_turns": len(task.turns),
            "done": self._done,
            "truncated": self._truncated,
            "reward": self._reward,
            "verdict": self._verdict,
            "turn_verdicts": [record.verdict for record in self.env.trajectory.turns if record.verdict is not None]
            if self.env.trajectory is not None
            else [],
        }
        if task.ood_spec:
            state.update(ood=task.ood_spec, ood_seed=task.ood_seed)
        return state

    # -- what a client does ------------------------------------------------------------------

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None) -> ToolOutcome:
        """Run one BFCL tool call as one env step; :class:`EpisodeError` for a request the env
        cannot take as an assistant message (the episode is over, oversized arguments)."""
        self._check_open()
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise EpisodeError(f"arguments must be an object, not {type(arguments).__name__}")
        _check_size(arguments)
        self._steps += 1
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_{self._steps}", "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        }
        observation, reward, terminated, truncated, info = self.env.step(message)
        # one entry, one tool message: the call's result, or the error of an entry that did not
        # decode (a name that is not an identifier)
        text = "\n\n".join(str(m.get("content") or "") for m in observation if m.get("role") == "tool")
        results = info.get("results") or []
        is_error = bool(info["parse"]["errors"]) or any(r.startswith(ERROR_PREFIX) for r in results)
        is_error = is_error or text.startswith(PARSE_ERROR_PREFIX)
        if terminated or truncated:
            self._close(reward, info, truncated)
        return ToolOutcome(text, is_error, truncated)

    def end_turn(self, reply: str) -> TurnOutcome:
        """Send the assistant's plain reply, which closes the user turn (BFCL: a message without
        tool calls); the next user turn's text, or the end of the episode."""
        self._check_open()
        if not isinstance(reply, str):
            raise EpisodeError(f"reply must be a string, not {type(reply).__name__}")
        if len(reply) > MAX_ARGUMENTS_CHARS:
            raise EpisodeError(f"reply is {len(reply)} characters; at most {MAX_ARGUMENTS_CHARS}")
        message = {"role": "assistant", "content": reply}
        # a variant may play another call format, in which this text could read as calls: a
        # reply that would be a tool step is refused rather than run as calls
        if self.env.codec.parse(message).attempted:
            raise EpisodeError(f"the reply reads as a tool call in the {self.env.codec.name} format; send plain text")
        before = len(self.env.tools)
        observation, reward, terminated, truncated, info = self.env.step(message)
        if terminated or truncated:
            self._close(reward, info, truncated)
            return TurnOutcome(self._ending_text(), True, False)
        text = "\n\n".join(str(m.get("content") or "") for m in observation)
        return TurnOutcome(text, False, len(self.env.tools) != before)

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._done:
            raise EpisodeError("the episode is over: read the resource toolenv://verdict (a new session plays again)")

    def _close(self, reward: float, info: Mapping[str, Any], truncated: bool) -> None:
        self._done, self._reward, self._truncated = True, float(reward), truncated
        self._verdict = dict(info["verdict"])

    def _ending_text(self) -> str:
        verdict = self._verdict or {}
        outcome = "passed" if verdict.get("passed") else f"failed ({verdict.get('failure') or 'unknown'})"
        return f"The episode is over: reward {self._reward}, {outcome}. The verdict is at toolenv://verdict."

    def truncation_note(self) -> str:
        """Said after the call that made BFCL force-quit the episode."""
        return (
            f"BFCL's step limit ({self.env.max_steps_per_turn} tool steps in one turn) was passed: the episode "
            f"is over, reward {self._reward}. The verdict is at toolenv://verdict."
        )


def _check_size(arguments: Mapping[str, Any]) -> None:
    """Refuse oversized (or unserialisable, absurdly nested) arguments before the env sees them."""
    try:
        size = len(json.dumps(arguments, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise EpisodeError(f"arguments are not a JSON object: {type(exc).__name__}") from None
    if size > MAX_ARGUMENTS_CHARS:
        raise EpisodeError(f"arguments are {size} characters of JSON; at most {MAX_ARGUMENTS_CHARS}")
