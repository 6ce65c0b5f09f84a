"""The server's typed records, on OpenEnv's base classes (``openenv.core.env_server.types``).

- :class:`ToolenvAction`: one assistant message, text or OpenAI-style ``tool_calls``;
- :class:`ToolenvObservation`: what ``BFCLEnv`` returns for it (``done``, ``reward``,
  ``metadata`` as OpenEnv has them, plus the env's observation, ``terminated``, ``truncated``
  and ``info``);
- :class:`ToolenvState`: ``episode_id`` and ``step_count`` (OpenEnv's) plus the task's id;
- :class:`ResetOptions`: what ``reset`` takes, each a ``BFCLEnv`` argument or reset option.

On the wire an observation is OpenEnv's ``{"observation": {...}, "reward": r, "done": d}``
(:func:`openenv.core.env_server.serialization.serialize_observation`, which leaves
``metadata`` out); :meth:`ToolenvObservation.from_wire` reads it back.
"""

from __future__ import annotations

from typing import Any, Literal

from openenv.core.env_server.types import Action, Observation, State
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolenv.inference.types import one_line


class ToolenvAction(Action):
    """The assistant's message, as OpenAI's chat API spells one.

    ``content`` alone is text that the episode's call format decodes (``<tool_call>`` blocks,
    a python list, …); with ``tool_calls`` (even empty) the whole message goes to ``BFCLEnv``
    as a message dict, which every call format accepts. Unknown keys are refused (HTTP 422),
    as OpenEnv's actions do.
    """

    role: Literal["assistant"] = "assistant"
    content: str | None = Field(default=None, description="the message text (None: empty)")
    tool_calls: list[Any] | None = Field(
        default=None,
        description='OpenAI tool calls: [{"id", "type": "function", "function": {"name", "arguments"}}]; '
        "malformed entries become error results, as in-process",
    )

    def env_action(self) -> str | dict[str, Any]:
        """What ``BFCLEnv.step`` gets: the message dict when ``tool_calls`` is set (the env
        records it whole), else the text, exactly as an in-process caller would pass them."""
        if self.tool_calls is not None:
            return {"role": self.role, "content": self.content, "tool_calls": self.tool_calls}
        return self.content or ""

    @classmethod
    def of(cls, action: str | dict[str, Any] | ToolenvAction) -> ToolenvAction:
        """An action from what ``BFCLEnv.step`` takes (text or a message dict), for clients."""
        if isinstance(action, ToolenvAction):
            return action
        if isinstance(action, str):
            return cls(content=action)
        return cls.model_validate(action)

    def wire(self) -> dict[str, Any]:
        """The JSON object a client sends (unset fields left out, so text stays text)."""
        return self.model_dump(exclude_unset=True, exclude={"metadata"} if not self.metadata else set())


class ToolenvObservation(Observation):
    """One ``BFCLEnv`` result. ``done`` is ``terminated or truncated``; ``reward`` is None after
    ``reset``, 0.0 on every step but the last, and the BFCL entry score (1.0 or 0.0) on it."""

    content: str | list[dict[str, Any]] = Field(
        default="",
        description="the env's observation: the new messages' text (observation_mode text) or the new chat "
        "messages (observation_mode messages)",
    )
    terminated: bool = Field(default=False, description="the last user turn was closed")
    truncated: bool = Field(default=False, description="BFCL's step limit force-quit the episode")
    info: dict[str, Any] = Field(default_factory=dict, description="BFCLEnv's info dict (verdicts, parse, calls…)")

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> ToolenvObservation:
        """Read OpenEnv's ``{"observation": {...}, "reward", "done"}`` back into the record."""
        return cls(**payload.get("observation", {}), reward=payload.get("reward"), done=payload.get("done", False))


class ToolenvState(State):
    """The session's episode: OpenEnv's ``episode_id`` and ``step_count`` (actions stepped
    since ``reset``) plus which task is played and how far it is."""

    task_id: str | None = Field(default=None, description="the task played (None before the first reset)")
    category: str | None = None
    call_format: str | None = None
    data_version: str | None = None
    turn: int = Field(default=0, ge=0, description="the index of the current user turn")
    num_turns: int = Field(default=0, ge=0)
    done: bool = Field(default=False, description="the episode has ended (terminated or truncated)")
    reward: float | None = Field(default=None, description="the entry score, once done")


class ResetOptions(BaseModel):
    """What ``reset`` takes besides OpenEnv's ``seed`` and ``episode_id``: ``BFCLEnv``'s
    JSON-serialisable arguments (see ``toolenv/env.py``) and its reset options. Each unset one
    keeps the server's default (``toolenv serve`` options). Unknown names are refused."""

    model_config = ConfigDict(extra="forbid")

    # reset options: which task of the selection
    task_id: str | None = Field(default=None, description="play this task id")
    index: int | None = Field(default=None, ge=0, description="else the task at this index (modulo the count)")
    file_variant: str | None = Field(
        default=None, description="with task_file: the OOD spec of the variant to pick among several of task_id"
    )
    # BFCLEnv arguments: the selection and how it is played
    category: str | None = Field(default=None, description="one BFCL category (base, miss_func, …)")
    categories: list[str] | None = None
    split: str | None = Field(default=None, description="all, train or test")
    apis: list[str] | None = None
    task_ids: list[str] | None = None
    call_format: str | None = Field(default=None, description="hermes, python, openai, xml or json_block")
    observation_mode: Literal["text", "messages"] | None = None  # toolenv.env.OBSERVATION_MODES
    max_steps_per_turn: int | None = Field(default=None, ge=1, le=1000)
    ood: str | None = Field(default=None, description="an OOD variant spec, e.g. rename_tools+shuffle_schema")
    ood_seed: int | None = Field(default=None, ge=0)
    task_file: str | None = Field(default=None, description="a JSON Lines task file inside a served --task-dir")
    keep_positional: bool | None = None
    data_version: str | None = Field(default=None, description="the bfcl-eval release, e.g. 2025.10.2")

    def env_kwargs(self) -> dict[str, Any]:
        """The ``BFCLEnv`` arguments that were given (``category`` folded into ``categories``)."""
        given = self.model_dump(exclude_unset=True, exclude={"task_id", "index", "file_variant", "category"})
        if self.category is not None:
            given["categories"] = [self.category, *(self.categories or [])]
        return {key: value for key, value in given.items() if value is not None}

    def reset_options(self) -> dict[str, Any]:
        """``BFCLEnv.reset``'s ``options``: ``task_id`` (with ``ood``: the file variant) or ``index``."""
        options: dict[str, Any] = {}
        if self.task_id is not None:
            options["task_id"] = self.task_id
            if self.file_variant is not None:
                options["ood"] = self.file_variant
        elif self.index is not None:
            options["index"] = self.index
        return options


def one_line_errors(exc: ValidationError, limit: int = 3) -> str:
    """A validation error as one line: ``where: what`` for its first ``limit`` problems."""
    parts = [f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}" for error in exc.errors()[:limit]]
    more = exc.error_count() - limit
    return one_line("; ".join(parts) + (f" (+{more} more)" if more > 0 else ""))
