"""The OpenEnv ``Environment`` of the server: one session's BFCL episodes, played by ``BFCLEnv``.

:class:`ToolenvEnvironment` has no episode logic of its own: ``reset`` builds (or reuses) a
:class:`toolenv.env.BFCLEnv` for the requested selection and calls its ``reset``; ``step``
passes the action to ``BFCLEnv.step``. So a served episode is the in-process episode: the same
scripted user turns, miss_func reveals, step limit and checker reward. Each session owns its
own instance (OpenEnv's session table), and ``BFCLEnv`` builds fresh backends every episode,
so no state is shared between sessions or episodes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata
from pydantic import ValidationError

from integrations.server.models import (
    ResetOptions,
    ToolenvAction,
    ToolenvObservation,
    ToolenvState,
    one_line_errors,
)
from toolenv.env import BFCLEnv

#: the BFCLEnv arguments a server may set as defaults (ResetOptions.env_kwargs's keys)
ENV_ARGUMENTS = (
    "categories",
    "split",
    "apis",
    "task_ids",
    "call_format",
    "observation_mode",
    "max_steps_per_turn",
    "ood",
    "ood_seed",
    "task_file",
    "keep_positional",
    "data_version",
)


class InvalidRequest(ValueError):
    """Options or an action of the wrong shape: HTTP 422 (one line)."""


class EpisodeStateError(RuntimeError):
    """A step with no episode running (before ``reset``, or after the episode ended): HTTP 409."""


class TaskFileRefused(PermissionError):
    """A ``task_file`` outside the folders the server serves: HTTP 403."""


@dataclass(frozen=True)
class ServeConfig:
    """What ``toolenv serve`` fixes for every session.

    - ``env_defaults``: ``BFCLEnv`` arguments (names in :data:`ENV_ARGUMENTS`) used when a
      ``reset`` does not give them;
    - ``task_dirs``: the folders whose JSON Lines files a ``reset`` may name as ``task_file``
      (none: only the server's own default ``task_file``); a client never reads other paths;
    - ``max_sessions``: sessions (HTTP and WebSocket together) alive at once;
    - ``idle_timeout``: seconds without a request after which a session is closed;
    - ``max_body_bytes``: the largest request body or WebSocket message accepted.
    """

    env_defaults: dict[str, Any] = field(default_factory=dict)
    task_dirs: tuple[Path, ...] = ()
    max_sessions: int = 64
    idle_timeout: float = 300.0
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        unknown = sorted(set(self.env_defaults) - set(ENV_ARGUMENTS))
        if unknown:
            raise ValueError(f"unknown BFCLEnv arguments {unknown}; valid: {', '.join(ENV_ARGUMENTS)}")
        if self.max_sessions < 1 or self.idle_timeout <= 0 or self.max_body_bytes < 1024:
            raise ValueError("max_sessions must be >= 1, idle_timeout > 0 and max_body_bytes >= 1024")
        object.__setattr__(self, "task_dirs", tuple(Path(d).resolve() for d in self.task_dirs))


class ToolenvEnvironment(Environment[ToolenvAction, ToolenvObservation, ToolenvState]):
    """One session: any number of consecutive BFCL episodes, each a fresh ``BFCLEnv`` episode.

    ``reset(seed=None, episode_id=None, **options)`` takes :class:`ResetOptions`' names and
    returns the system message and first user turn; ``step(action)`` returns the tool results
    or the next user turn, and on the last step ``done=True`` with the entry score as
    ``reward``. The ``BFCLEnv`` is kept across resets that ask for the same selection, so its
    OOD variant cache is reused; any other selection gets a new one.
    """

    # every session has its own instance and BFCLEnv builds fresh backends per episode
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, config: ServeConfig | None = None) -> None:
        super().__init__()
        self.config = config or ServeConfig()
        self._env: BFCLEnv | None = None
        self._env_key: str | None = None
        self._state = ToolenvState()

    # -- OpenEnv's Environment -----------------------------------------------------------------

    def reset(self, seed: int | None = None, episode_id: str | None = None, **options: Any) -> ToolenvObservation:
        """Start an episode and return its opening (system message and first user turn).

        Raises :class:`InvalidRequest` for unknown or mistyped options, :class:`TaskFileRefused`,
        and ``BFCLEnv``'s one-line ``ValueError`` / ``DataError`` for values it refuses (an
        unknown task id, category, call format…)."""
        try:
            chosen = ResetOptions.model_validate(options)
        except ValidationError as exc:  # one line, whichever transport reports it
            raise InvalidRequest(f"reset: {one_line_errors(exc)}") from None
        env, key = self._env_for({**self.config.env_defaults, **chosen.env_kwargs()})
        observation, info = env.reset(seed=seed, options=chosen.reset_options())
        self._env, self._env_key = env, key  # only now: a refused reset leaves the session as it was
        self._state = ToolenvState(
            episode_id=episode_id or str(uuid.uuid4()),
            step_count=0,
            task_id=info["task_id"],
            category=info["category"],
            call_format=info["call_format"],
            data_version=info["data_version"],
            num_turns=info["num_turns"],
        )
        return ToolenvObservation(content=observation, info=info, metadata=self._metadata())

    def step(self, action: ToolenvAction, timeout_s: float | None = None, **kwargs: Any) -> ToolenvObservation:
        """Play one assistant message. ``timeout_s`` is accepted for OpenEnv's signature and
        ignored: a step runs the backends in-process and takes milliseconds."""
        if self._env is None or self._state.done or self._state.task_id is None:
            raise EpisodeStateError("no episode is running: reset first (or again, after the episode ended)")
        observation, reward, terminated, truncated, info = self._env.step(action.env_action())
        done = terminated or truncated
        self._state.step_count += 1
        if "turn_verdict" in info and not done:  # a reply closed a turn: the next one is open
            self._state.turn = info["turn"] + 1
        if done:
            self._state.done, self._state.reward = True, float(reward)
        return ToolenvObservation(
            content=observation,
            reward=float(reward),
            done=done,
            terminated=terminated,
            truncated=truncated,
            info=info,
            metadata=self._metadata(),
        )

    @property
    def state(self) -> ToolenvState:
        """The session's episode (a copy: callers cannot change the session through it)."""
        return self._state.model_copy()

    def get_metadata(self) -> EnvironmentMetadata:
        """``/metadata``: the environment's name and what it serves."""
        return EnvironmentMetadata(
            name="toolenv-bfcl-multiturn",
            description="BFCL-V3 multi-turn tool use (800 tasks: base, miss_func, miss_param, long_context) as "
            "stateful episodes; reward: the BFCL entry score from the official checker's rules",
            version=_version(),
            documentation_url=None,
        )

    def close(self) -> None:
        """Drop the episode (OpenEnv calls this when the session ends)."""
        self._env, self._env_key = None, None

    @property
    def bfcl_env(self) -> BFCLEnv | None:
        """The ``BFCLEnv`` playing the current episode (its ``trajectory`` is the record)."""
        return self._env

    # -- helpers -------------------------------------------------------------------------------

    def _env_for(self, kwargs: dict[str, Any]) -> tuple[BFCLEnv, str]:
        """``(env, key)``: the session's ``BFCLEnv`` when ``kwargs`` are those it was built
        with, else a new one (``reset`` keeps it once its reset succeeds)."""
        if "task_file" in kwargs:
            kwargs["task_file"] = str(self._allowed_task_file(kwargs["task_file"]))
        key = json.dumps(kwargs, sort_keys=True)
        if self._env is not None and key == self._env_key:
            return self._env, key
        return BFCLEnv(**kwargs), key

    def _allowed_task_file(self, name: str) -> Path:
        """``name`` resolved, if it is the server's default task file or lies inside one of
        its task folders (a relative name is taken inside the first folder)."""
        default = self.config.env_defaults.get("task_file")
        if default is not None and name == default:
            return Path(default)
        dirs = self.config.task_dirs
        path = Path(name) if Path(name).is_absolute() or not dirs else dirs[0] / name
        path = path.resolve()
        if not any(path.is_relative_to(folder) for folder in dirs):
            raise TaskFileRefused(
                f"task_file {name!r} is not inside a served task folder (toolenv serve --task-dir DIR)"
            )
        return path

    def _metadata(self) -> dict[str, Any]:
        return {"episode_id": self._state.episode_id, "task_id": self._state.task_id}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("toolenv")
    except PackageNotFoundError:  # a source checkout that was not installed
        return "0+unknown"
