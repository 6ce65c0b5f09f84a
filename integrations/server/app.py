"""The FastAPI app of ``toolenv serve``: OpenEnv's server, with sessions over HTTP and limits.

Built on :class:`openenv.core.env_server.http_server.HTTPEnvServer` (openenv-core 0.3.0), which
provides the session table, the capacity check, one single-thread executor per session, the
idle reaper's lifecycle and these routes, unchanged:

- ``WS /ws``: OpenEnv's session protocol. One connection = one session. The client sends
  ``{"type": "reset", "data": {seed?, episode_id?, ...ResetOptions}}``,
  ``{"type": "step", "data": <ToolenvAction>}``, ``{"type": "state"}`` or ``{"type": "close"}``
  and gets ``{"type": "observation", "data": {"observation", "reward", "done"}}``,
  ``{"type": "state", "data": <ToolenvState>}`` or ``{"type": "error", "data": {"message",
  "code"}}``. The session ends (and its slot is freed) when the socket closes, however it closes.
- ``GET /health`` → ``{"status": "healthy"}``; ``GET /metadata`` → name, description, version;
  ``GET /schema`` → the JSON schemas of action, observation and state; ``POST /mcp``: OpenEnv's
  JSON-RPC endpoint (this environment exposes no MCP tools).

OpenEnv's HTTP ``/reset``, ``/step`` and ``/state`` build a throwaway environment per request
(stateless), which cannot play a multi-turn episode; they are replaced by session routes:

- ``POST /reset`` ``{session_id?, seed?, episode_id?, ...ResetOptions}`` → ``{"session_id",
  "observation", "reward", "done"}``: without ``session_id`` a new session is opened;
- ``POST /step`` ``{"session_id", "action": <ToolenvAction>}`` → the same shape;
- ``GET /state?session_id=…`` → :class:`~integrations.server.models.ToolenvState`;
- ``POST /close`` ``{"session_id"}`` → ``{"session_id", "closed": true}``;
- ``GET /sessions`` → ``{"active", "max", "http", "websocket"}``.

Limits: at most ``max_sessions`` sessions (HTTP and WebSocket together; more get HTTP 503 or
OpenEnv's ``CAPACITY_REACHED``); bodies and WebSocket messages over ``max_body_bytes`` get 413
(a WebSocket is closed with 1009); a session idle for ``idle_timeout`` seconds is closed (HTTP:
reaped, then 404; WebSocket: closed with 1001). Every HTTP error is ``{"detail": "<one line>"}``
with a 4xx status: 400 malformed JSON or a value the environment refuses, 403 a task file
outside the served folders, 404 unknown session, 409 no episode running, 413 too large, 422
wrong action or option type. Model text is only ever parsed by the env's call formats, never
evaluated.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from openenv.core.env_server.exceptions import SessionCapacityError
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.serialization import deserialize_action, serialize_observation
from openenv.core.env_server.types import ConcurrencyConfig, ResetRequest
from pydantic import ValidationError

from envs._official import DataError
from integrations.server.environment import (
    EpisodeStateError,
    InvalidRequest,
    ServeConfig,
    TaskFileRefused,
    ToolenvEnvironment,
)
from integrations.server.models import ToolenvAction, ToolenvObservation, one_line_errors
from toolenv.inference.types import one_line

log = logging.getLogger("toolenv.serve")

#: OpenEnv's stateless HTTP routes, replaced by the session routes below
STATELESS_ROUTES = frozenset({"/reset", "/step", "/state"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=one_line(message))


# -- the server: OpenEnv's session table, shared by WebSocket and HTTP sessions ---------------------


class ToolenvServer(HTTPEnvServer):
    """OpenEnv's ``HTTPEnvServer`` serving :class:`ToolenvEnvironment`, plus HTTP sessions.

    HTTP sessions live in the same table as WebSocket ones (``_create_session`` /
    ``_destroy_session``, as OpenEnv's own HTTP MCP sessions do), so ``max_sessions`` bounds
    both together. The idle reaper closes HTTP sessions only: a WebSocket session is closed
    by its connection's idle timeout (:class:`LimitsMiddleware`), which also closes the socket.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        super().__init__(
            functools.partial(ToolenvEnvironment, config),
            ToolenvAction,
            ToolenvObservation,
            concurrency_config=ConcurrencyConfig(
                max_concurrent_envs=config.max_sessions, session_timeout=config.idle_timeout
            ),
        )
        self._http_sessions: set[str] = set()
        self._busy: dict[str, int] = {}  # HTTP requests in flight per session: never reaped mid-request

    # -- session bookkeeping -------------------------------------------------------------------

    async def _destroy_session(self, session_id: str) -> None:
        self._http_sessions.discard(session_id)
        await super()._destroy_session(session_id)

    async def _reap_idle_sessions(self) -> None:
        """Close HTTP sessions idle for longer than the timeout, checking 4 times per timeout
        (OpenEnv checks every 5 s at the most often; a short timeout should act in time)."""
        timeout = self.config.idle_timeout
        while True:
            try:
                await asyncio.sleep(min(max(timeout / 4, 0.05), 5.0))
                now = time.time()
                for session_id in list(self._http_sessions):
                    info = self._session_info.get(session_id)
                    if info and not self._busy.get(session_id) and now - info.last_activity_at > timeout:
                        log.info("closing idle HTTP session %s", session_id)
                        await self._destroy_session(session_id)
            except asyncio.CancelledError:
                break
            except Exception as exc:  # noqa: BLE001 - the reaper must outlive one bad pass
                log.warning("idle-session reaper: %s", one_line(str(exc)))

    async def close_all(self) -> None:
        """Close every session (at shutdown: their executor threads end with them)."""
        for session_id in list(self._sessions):
            await self._destroy_session(session_id)

    def session_counts(self) -> dict[str, int]:
        """``{"active", "max", "http", "websocket"}``: sessions alive now, by transport."""
        active = len(self._sessions)
        http = len(self._http_sessions)
        return {"active": active, "max": self.max_concurrent_envs, "http": http, "websocket": active - http}

    def _http_session(self, session_id: Any) -> ToolenvEnvironment:
        """The environment of an HTTP session, or the 4xx that says why there is none."""
        if not isinstance(session_id, str) or not session_id:
            raise _error(400, "session_id is required (POST /reset without one opens a session)")
        env = self._sessions.get(session_id)
        if session_id not in self._http_sessions or env is None:
            raise _error(404, f"unknown session {session_id!r} (closed, reaped after idling, or never opened)")
        return env  # type: ignore[return-value]

    async def _in_session(self, session_id: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` on the session's own executor thread (so one session's calls are
        serialised and never block the event loop), marking the session busy meanwhile."""
        self._busy[session_id] = self._busy.get(session_id, 0) + 1
        self._update_session_activity(session_id)
        try:
            return await self._run_in_session_executor(session_id, func, *args, **kwargs)
        finally:
            self._busy[session_id] -= 1
            if not self._busy[session_id]:
                del self._busy[session_id]
            self._update_session_activity(session_id)

    # -- routes --------------------------------------------------------------------------------

    def register_routes(self, app: FastAPI, mode: Any = "simulation") -> None:
        """OpenEnv's routes, with its stateless ``/reset``, ``/step``, ``/state`` swapped for
        the session routes (see the module docstring)."""
        super().register_routes(app, mode)
        app.router.routes[:] = [
            route
            for route in app.router.routes
            if not (getattr(route, "path", None) in STATELESS_ROUTES and getattr(route, "methods", None))
        ]
        app.add_api_route("/reset", self.http_reset, methods=["POST"], tags=["Environment Control"])
        app.add_api_route("/step", self.http_step, methods=["POST"], tags=["Environment Control"])
        app.add_api_route("/state", self.http_state, methods=["GET"], tags=["State Management"])
        app.add_api_route("/close", self.http_close, methods=["POST"], tags=["Environment Control"])
        app.add_api_route("/sessions", self.http_sessions, methods=["GET"], tags=["Health"])
        app.router.on_shutdown.append(self.close_all)

    async def http_reset(self, request: Request) -> JSONResponse:
        """``POST /reset`` ``{session_id?, seed?, episode_id?, ...ResetOptions}`` → ``{"session_id",
        "observation", "reward": null, "done": false}``: starts an episode in the given session,
        or in a new one (503 when ``max_sessions`` are open). A new session whose reset fails
        is closed again, so a bad request never holds a slot."""
        body = await _json_object(request)
        session_id = body.pop("session_id", None)
        try:
            kwargs = ResetRequest.model_validate(body).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise _error(422, f"reset: {one_line_errors(exc)}") from None
        created = session_id is None
        if created:
            session_id = await self._open_http_session()
        env = self._http_session(session_id)
        try:
            observation = await self._in_session(session_id, env.reset, **kwargs)
        except Exception as exc:
            if created:
                await self._destroy_session(session_id)
            raise _status_error(exc) from None
        return JSONResponse({"session_id": session_id, **serialize_observation(observation)})

    async def http_step(self, request: Request) -> JSONResponse:
        """``POST /step`` ``{"session_id", "action": {"content"?, "tool_calls"?}}`` →
        ``{"session_id", "observation", "reward", "done"}``. 422 when ``action`` is not a
        :class:`ToolenvAction`, 409 when no episode is running in the session."""
        body = await _json_object(request)
        session_id = body.get("session_id")
        env = self._http_session(session_id)
        data = body.get("action")
        if not isinstance(data, dict):
            raise _error(422, 'action must be a JSON object: {"content": TEXT} or {"tool_calls": [...]}')
        try:
            action = deserialize_action(data, ToolenvAction)
        except ValidationError as exc:
            raise _error(422, f"action: {one_line_errors(exc)}") from None
        try:
            observation = await self._in_session(session_id, env.step, action)
        except Exception as exc:
            raise _status_error(exc) from None
        self._update_session_activity(session_id, increment_step=True)
        return JSONResponse({"session_id": session_id, **serialize_observation(observation)})

    async def http_state(self, session_id: str | None = None) -> JSONResponse:
        """``GET /state?session_id=…`` → the session's :class:`ToolenvState`."""
        env = self._http_session(session_id)
        self._update_session_activity(session_id)  # type: ignore[arg-type]
        return JSONResponse(env.state.model_dump())

    async def http_close(self, request: Request) -> JSONResponse:
        """``POST /close`` ``{"session_id"}`` → ``{"session_id", "closed": true}``; frees the slot."""
        session_id = (await _json_object(request)).get("session_id")
        self._http_session(session_id)
        await self._destroy_session(session_id)
        return JSONResponse({"session_id": session_id, "closed": True})

    async def http_sessions(self) -> JSONResponse:
        """``GET /sessions`` → ``{"active", "max", "http", "websocket"}``."""
        return JSONResponse(self.session_counts())

    async def _open_http_session(self) -> str:
        try:
            session_id, _ = await self._create_session()
        except SessionCapacityError as exc:
            raise _error(503, f"server at capacity: {exc.active_sessions}/{exc.max_sessions} sessions open") from None
        self._http_sessions.add(session_id)
        return session_id


def _status_error(exc: Exception) -> HTTPException:
    """The HTTP error for what a reset or step raised: the user's mistakes as 4xx, anything
    else as a logged 500 (still one line: the server keeps serving)."""
    if isinstance(exc, HTTPException):
        return exc
    for kind, status in ((InvalidRequest, 422), (TaskFileRefused, 403), (EpisodeStateError, 409)):
        if isinstance(exc, kind):
            return _error(status, str(exc))
    if isinstance(exc, (ValueError, DataError, OSError)):  # BFCLEnv's one-line refusals, missing files
        return _error(400, str(exc) or type(exc).__name__)
    log.exception("unexpected error in a session", exc_info=exc)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}")


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (empty body: ``{}``), or a 400 that says what is wrong."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _error(400, f"the request body must be a JSON object, not {type(data).__name__}")
    return data


# -- limits: body size and WebSocket idleness, in front of every route -------------------------------


class LimitsMiddleware:
    """ASGI middleware: bounded request bodies and WebSocket messages, idle WebSockets closed.

    - HTTP: a body over ``max_body_bytes`` (by ``Content-Length`` or as it streams) gets 413
      before any route sees it; the rest of it is read and dropped (never stored), so the
      client reads the 413 instead of a reset connection.
    - WebSocket: a message over ``max_body_bytes`` closes the socket with 1009; no message for
      ``idle_timeout`` seconds closes it with 1001. Either way the app sees a disconnect, and
      OpenEnv's handler frees the session.
    """

    def __init__(self, app: Any, max_body_bytes: int, idle_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _drain(receive)
            return await self._too_large(send)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body"):
                    await _drain(receive)
                return await self._too_large(send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_body_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        closed = False

        async def close(code: int, reason: str) -> Message:
            nonlocal closed
            closed = True
            try:
                await send({"type": "websocket.close", "code": code, "reason": reason})
            except Exception:  # noqa: BLE001 - the peer may be gone already; the session still ends
                pass
            return {"type": "websocket.disconnect", "code": code}

        async def guarded_receive() -> Message:
            if closed:
                return {"type": "websocket.disconnect", "code": 1000}
            try:
                async with asyncio.timeout(self.idle_timeout):
                    message = await receive()
            except TimeoutError:
                return await close(1001, f"idle for {self.idle_timeout:g} s: session closed")
            if message["type"] == "websocket.receive" and _ws_too_large(message, self.max_body_bytes):
                return await close(1009, f"message larger than {self.max_body_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            if closed:  # after our close frame the app's own close has nothing left to do
                return
            try:
                await send(message)
            except OSError:
                # OpenEnv closes the socket after the session ends; if the peer already went
                # away, that close has nobody to reach: not an error worth a traceback
                if message["type"] != "websocket.close":
                    raise

        await self.app(scope, guarded_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a request body."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _ws_too_large(message: Message, limit: int) -> bool:
    """Whether a WebSocket message is over ``limit`` bytes (text counted as UTF-8, encoded
    only when its length alone cannot decide: UTF-8 takes 1 to 4 bytes a character)."""
    if message.get("bytes") is not None:
        return len(message["bytes"]) > limit
    text = message.get("text") or ""
    if len(text) > limit or len(text) * 4 <= limit:
        return len(text) > limit
    return len(text.encode("utf-8")) > limit


# -- the app ---------------------------------------------------------------------------------------


async def _one_line_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's request errors (a list of dicts) as one line, like every other error here."""
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'request'}: {e.get('msg', '')}" for e in exc.errors()]
    return JSONResponse({"detail": one_line("; ".join(parts[:3]) or "invalid request")}, status_code=422)


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The server app for ``config`` (defaults: 64 sessions, 300 s idle timeout, 1 MiB bodies,
    ``BFCLEnv``'s own defaults). ``app.state.server`` is the :class:`ToolenvServer`."""
    config = config or ServeConfig()
    app = FastAPI(
        title="toolenv: BFCL multi-turn (OpenEnv)",
        version="1.0.0",
        description=__doc__,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    server = ToolenvServer(config)
    server.register_routes(app)
    app.add_exception_handler(RequestValidationError, _one_line_validation_error)
    app.add_middleware(LimitsMiddleware, max_body_bytes=config.max_body_bytes, idle_timeout=config.idle_timeout)
    app.state.server = server
    return app


def config_from_environment() -> ServeConfig:
    """The config of ``uvicorn integrations.server.app:app``: ``$TOOLENV_SERVE_CONFIG``, a JSON
    object of :class:`ServeConfig` fields (``toolenv serve`` passes its options directly)."""
    raw = os.environ.get("TOOLENV_SERVE_CONFIG", "").strip()
    fields = json.loads(raw) if raw else {}
    if "task_dirs" in fields:
        fields["task_dirs"] = tuple(fields["task_dirs"])
    return ServeConfig(**fields)


def __getattr__(name: str) -> Any:
    """``app``, built on first access, for ``uvicorn integrations.server.app:app`` and
    ``openenv.yaml`` (importing this module builds nothing)."""
    if name == "app":
        value = globals()["app"] = create_app(config_from_environment())
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
