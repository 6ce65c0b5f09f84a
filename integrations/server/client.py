"""Clients of ``toolenv serve``.

- :class:`ToolenvClient`: synchronous, over WebSocket (``transport="ws"``, OpenEnv's session
  protocol, one connection per session) or HTTP (``transport="http"``, the session routes).
  Its methods mirror ``BFCLEnv``'s: ``reset(**options)`` and ``step(action)`` return a
  :class:`~integrations.server.models.ToolenvObservation` (``content``, ``reward``, ``done``,
  ``terminated``, ``truncated``, ``info``), ``state()`` a ``ToolenvState``.
- :class:`ToolenvEnvClient`: OpenEnv's own async ``EnvClient`` for this environment, for code
  written against OpenEnv (``async with ToolenvEnvClient(base_url=URL) as env: ...``).

    >>> with ToolenvClient("http://127.0.0.1:8000") as env:
    ...     obs = env.reset(task_id="multi_turn_base_0", call_format="hermes")
    ...     obs = env.step('<tool_call>{"name": "ls", "arguments": {}}</tool_call>')
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import httpx
from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from integrations.server.models import ToolenvAction, ToolenvObservation, ToolenvState

TRANSPORTS = ("ws", "http")


class ServerError(RuntimeError):
    """The server refused a request: ``status`` is the HTTP status (``transport="http"``) or
    OpenEnv's WebSocket error code (``"VALIDATION_ERROR"``, ``"CAPACITY_REACHED"``, …)."""

    def __init__(self, status: int | str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ToolenvClient:
    """One session of a ``toolenv serve`` server (see the module docstring).

    ``base_url``: ``http://host:port`` (``ws://`` is accepted too). ``timeout``: seconds per
    request. Sessions are opened by the first ``reset`` and closed by :meth:`close` (or the
    ``with`` block); any number of episodes can be played in one session.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", transport: str = "ws", timeout: float = 60.0) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}; valid: {', '.join(TRANSPORTS)}")
        self.transport = transport
        self.timeout = timeout
        self.base_url = base_url.rstrip("/").replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        self.session_id: str | None = None  # HTTP only: the server's id of this session
        self._http: httpx.Client | None = None
        self._ws: ClientConnection | None = None
        self._ws_stack = ExitStack()  # websockets >= 17 wants its connection used as a context

    # -- the environment's methods ---------------------------------------------------------------

    def reset(self, seed: int | None = None, episode_id: str | None = None, **options: Any) -> ToolenvObservation:
        """Start an episode; ``options`` are :class:`~integrations.server.models.ResetOptions`
        names (``task_id``, ``category``, ``call_format``, ``ood``, ``data_version``, ``task_file``, …)."""
        data = {**options, **({"seed": seed} if seed is not None else {})}
        if episode_id is not None:
            data["episode_id"] = episode_id
        if self.transport == "ws":
            return ToolenvObservation.from_wire(self._ws_call({"type": "reset", "data": data}))
        payload = self._post("/reset", {**data, **({"session_id": self.session_id} if self.session_id else {})})
        self.session_id = payload["session_id"]
        return ToolenvObservation.from_wire(payload)

    def step(self, action: str | dict[str, Any] | ToolenvAction) -> ToolenvObservation:
        """Send one assistant message: text, or an OpenAI-style message dict with ``tool_calls``."""
        wire = ToolenvAction.of(action).wire()
        if self.transport == "ws":
            return ToolenvObservation.from_wire(self._ws_call({"type": "step", "data": wire}))
        return ToolenvObservation.from_wire(self._post("/step", {"session_id": self.session_id, "action": wire}))

    def state(self) -> ToolenvState:
        """The session's episode: ``episode_id``, ``step_count``, ``task_id``, ``turn``, ``done``…"""
        if self.transport == "ws":
            return ToolenvState(**self._ws_call({"type": "state"}))
        response = self._client().get("/state", params={"session_id": self.session_id or ""})
        return ToolenvState(**_checked(response))

    def close(self) -> None:
        """End the session on the server (frees its slot) and the connection."""
        if self._ws is not None:
            try:
                self._ws.send(json.dumps({"type": "close"}))
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._ws_stack.close()
            self._ws = None
        if self._http is not None:
            if self.session_id is not None:
                try:
                    self._http.post("/close", json={"session_id": self.session_id})
                except httpx.HTTPError:
                    pass  # the server reaps it after its idle timeout
                self.session_id = None
            self._http.close()
            self._http = None

    def __enter__(self) -> ToolenvClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transports ------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        return self._http

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _checked(self._client().post(path, json=body))

    def _ws_call(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
            self._ws = self._ws_stack.enter_context(connect(url, open_timeout=self.timeout, max_size=None))
        try:
            self._ws.send(json.dumps(message))
        except ConnectionClosed:
            pass  # the server may have refused the session (capacity) and closed: its reason is queued
        try:
            reply = json.loads(self._ws.recv(timeout=self.timeout))
        except ConnectionClosed as exc:
            frame = exc.rcvd
            reason = f"{frame.code} {frame.reason}".strip() if frame else "no close frame"
            raise ServerError("CLOSED", f"the server closed the session ({reason})") from None
        if reply.get("type") == "error":
            data = reply.get("data", {})
            raise ServerError(data.get("code", "ERROR"), str(data.get("message", "")))
        return reply.get("data", {})


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 2xx response, or :class:`ServerError` with the server's one-line detail."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ServerError(response.status_code, str(detail))
    return response.json()


class ToolenvEnvClient(EnvClient[ToolenvAction, ToolenvObservation, ToolenvState]):
    """OpenEnv's async WebSocket client, typed for this server: ``await env.reset(task_id=…)``
    and ``await env.step(action)`` return OpenEnv's ``StepResult`` whose ``observation`` is a
    :class:`ToolenvObservation`; ``step`` also takes text or a message dict."""

    def _step_payload(self, action: Any) -> dict[str, Any]:
        return ToolenvAction.of(action).wire()

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ToolenvObservation]:
        observation = ToolenvObservation.from_wire(payload)
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> ToolenvState:
        return ToolenvState(**payload)
