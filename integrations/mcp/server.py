"""The MCP server: one BFCL task's tools, one isolated episode per MCP session.

Built on the official ``mcp`` SDK's low-level :class:`mcp.server.lowlevel.Server` (mcp 2.x,
where v1's ``FastMCP`` became ``MCPServer``). ``MCPServer`` registers Python functions as one
process-wide tool list; here the tools are the task's BFCL functions with their own JSON
schemas, and the list differs between sessions once a miss_func turn reveals held-out tools,
so the handlers below answer each request from the session's own :class:`Episode`.

What a client sees:

- tools: the task's BFCL functions (names and JSON schemas from the task's function docs, as
  ``BFCLEnv`` offers them) and ``end_turn(reply)``, which answers the user and returns the next
  user turn, or the episode's end with its reward;
- resources: ``toolenv://turn`` (the current user turn), ``toolenv://verdict`` (task, turn,
  done, reward, the checker's verdict, JSON), ``toolenv://system`` (the env's system prompt);
- prompt ``turn``: the current user turn as user message(s).

Sessions. The episode lives in the MCP connection's state: one per stdio process, one per
Streamable HTTP session (``Mcp-Session-Id``), freed when the session ends. This needs the
handshake protocol era (MCP 2025-11-25 and before): the 2026-07-28 revision has no sessions,
so this server declines it (``server/discover`` names the handshake versions, and the SDK's
clients then connect with ``initialize``), and refuses requests that carry its envelope.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette

from integrations.mcp.episode import Episode, EpisodeError
from toolenv.data import Task

logger = logging.getLogger(__name__)

END_TURN = "end_turn"
TURN_URI = "toolenv://turn"
VERDICT_URI = "toolenv://verdict"
SYSTEM_URI = "toolenv://system"
TURN_PROMPT = "turn"
#: what every handler gets: the request's context (session proxy, protocol version, request id)
Ctx = ServerRequestContext[Any, Any]
#: where a session's episode is kept in the connection's state
_STATE_KEY = "toolenv.episode"

END_TURN_TOOL = types.Tool(
    name=END_TURN,
    description=(
        "Answer the user in plain text and end this user turn (no more tool calls for it). "
        "Returns the user's next request, or, after the last turn, the end of the episode with its reward."
    ),
    input_schema={
        "type": "object",
        "properties": {"reply": {"type": "string", "description": "your answer to the user"}},
        "required": ["reply"],
    },
)


@dataclass(frozen=True)
class McpConfig:
    """What every session plays: the task (a variant if one was asked for) and the env options."""

    task: Task
    env_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = "toolenv"


class EpisodeServer(Server[Any]):
    """The SDK's low-level server, advertising ``tools.listChanged`` on every transport (the
    Streamable HTTP manager builds its initialize result with the defaults)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


def create_server(config: McpConfig) -> EpisodeServer:
    """The MCP server of ``config``'s task; a one-line ``ValueError`` if a BFCL tool's name
    collides with ``end_turn``."""
    clash = {tool.name for tool in Episode(config.task, config.env_options).tools} & {END_TURN}
    if clash:
        raise ValueError(f"the task offers a tool named {', '.join(sorted(clash))}, which this server reserves")
    handlers = _Handlers(config)
    server = EpisodeServer(
        config.name,
        version=_version(),
        instructions=_instructions(config),
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_read_resource=handlers.read_resource,
        on_list_prompts=handlers.list_prompts,
        on_get_prompt=handlers.get_prompt,
    )
    server.add_request_handler("server/discover", types.RequestParams, _decline_modern_era)
    server.middleware.append(_refuse_modern_requests)
    return server


class _Handlers:
    """The request handlers; each reads or drives the requesting session's episode."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config

    def episode(self, ctx: Ctx) -> Episode:
        """The session's episode, started on its first request."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise _sessionless()
        # The SDK keeps per-connection state on the Connection the request came in on; mcp 2.3
        # reaches it only through the session proxy (hence the pinned version in the extra).
        state: dict[str, Any] = ctx.session._connection.state
        episode = state.get(_STATE_KEY)
        if episode is None:
            episode = state[_STATE_KEY] = Episode(self.config.task, self.config.env_options)
        return episode

    async def list_tools(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools = [_mcp_tool(tool.openai()["function"]) for tool in self.episode(ctx).tools]
        return types.ListToolsResult(tools=tools + [END_TURN_TOOL], cache_scope="private")

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        episode = self.episode(ctx)
        # env.step is synchronous and short, and runs here without an await in between: calls of
        # one session take effect one at a time, in the order they arrive
        try:
            if params.name == END_TURN:
                return await self._end_turn(ctx, episode, params.arguments or {})
            outcome = episode.call_tool(params.name, params.arguments)
        except EpisodeError as exc:
            return _error(str(exc))
        except Exception as exc:  # never crash a session on a request: report it and go on
            logger.exception("tools/call %r failed", params.name)
            return _error(f"internal error: {type(exc).__name__}: {exc}")
        texts = [outcome.text] + ([episode.truncation_note()] if outcome.truncated else [])
        return types.CallToolResult(content=[_text(t) for t in texts], is_error=outcome.is_error)

    async def _end_turn(self, ctx: Ctx, episode: Episode, arguments: Mapping[str, Any]) -> types.CallToolResult:
        unknown = sorted(set(arguments) - {"reply"})
        if unknown or not isinstance(arguments.get("reply"), str):
            return _error(f"{END_TURN} takes one argument, reply (a string)")
        outcome = episode.end_turn(arguments["reply"])
        if outcome.tools_changed:
            # on the request's own stream, which every client reads (the standalone HTTP stream is
            # optional), before the result that tells the model about the new tools
            await ctx.session.send_notification(types.ToolListChangedNotification(), related_request_id=ctx.request_id)
        return types.CallToolResult(content=[_text(outcome.text)], is_error=False)

    async def list_resources(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        self.episode(ctx)
        return types.ListResourcesResult(resources=list(_RESOURCES), cache_scope="private")

    async def read_resource(self, ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        episode = self.episode(ctx)
        if params.uri == TURN_URI:
            text, mime = episode.turn_text(), "text/plain"
        elif params.uri == VERDICT_URI:
            text, mime = json.dumps(episode.state(), ensure_ascii=False), "application/json"
        elif params.uri == SYSTEM_URI:
            text, mime = episode.system_prompt, "text/plain"
        else:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown resource {params.uri[:200]!r}")
        contents = [types.TextResourceContents(uri=params.uri, mime_type=mime, text=text)]
        return types.ReadResourceResult(contents=contents, cache_scope="private")

    async def list_prompts(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        self.episode(ctx)
        prompt = types.Prompt(name=TURN_PROMPT, description="the user's current request in this BFCL episode")
        return types.ListPromptsResult(prompts=[prompt], cache_scope="private")

    async def get_prompt(self, ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        episode = self.episode(ctx)
        if params.name != TURN_PROMPT:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown prompt {params.name[:200]!r}")
        messages = [
            types.PromptMessage(role="user", content=_text(str(m.get("content") or "")))
            for m in episode.turn_messages()
        ]
        return types.GetPromptResult(description=f"{episode.task.id}, turn {episode.turn}", messages=messages)


_RESOURCES = (
    types.Resource(name="turn", uri=TURN_URI, mime_type="text/plain", description="the current user turn"),
    types.Resource(
        name="verdict",
        uri=VERDICT_URI,
        mime_type="application/json",
        description="task, turn, done, reward and the BFCL checker's verdict (set once the episode is over)",
    ),
    types.Resource(name="system", uri=SYSTEM_URI, mime_type="text/plain", description="the env's system prompt"),
)


def _sessionless() -> MCPError:
    return MCPError(
        code=types.INVALID_REQUEST,
        message="toolenv mcp keeps one episode per MCP session: connect with the initialize handshake "
        f"(protocol {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)})",
    )


async def _refuse_modern_requests(ctx: Ctx, call_next: CallNext) -> HandlerResult:
    """Middleware: a request in the 2026-07-28 envelope (no session to keep an episode in) gets
    one clear error on every transport, before the SDK's own gates answer it less clearly; only
    ``server/discover`` passes, to be declined with the versions served."""
    meta = (ctx.params or {}).get("_meta") if isinstance(ctx.params, Mapping) else None
    if ctx.method != "server/discover" and isinstance(meta, Mapping) and types.PROTOCOL_VERSION_META_KEY in meta:
        raise _sessionless()
    return await call_next(ctx)


async def _decline_modern_era(ctx: Ctx, params: types.RequestParams) -> types.DiscoverResult:
    """``server/discover`` (2026-07-28): decline with the handshake versions, so that clients
    fall back to ``initialize`` and get a session (the SDK's ``mode="auto"`` does)."""
    raise MCPError(
        code=types.UNSUPPORTED_PROTOCOL_VERSION,
        message="this server keeps state per MCP session: use the initialize handshake",
        data={"supported": list(HANDSHAKE_PROTOCOL_VERSIONS)},
    )


def _mcp_tool(function: Mapping[str, Any]) -> types.Tool:
    """A BFCL tool (its OpenAI function form, as ``BFCLEnv`` offers it) as an MCP tool."""
    schema = dict(function.get("parameters") or {})
    schema.setdefault("type", "object")  # MCP requires an object schema
    return types.Tool(name=function["name"], description=function.get("description") or "", input_schema=schema)


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(message)], is_error=True)


def _instructions(config: McpConfig) -> str:
    task = config.task
    return (
        f"A BFCL multi-turn task ({task.id}, {len(task.turns)} user turns). Act with the tools; when a "
        f"request is done (or cannot be done), call {END_TURN}(reply) with your answer: it returns the "
        f"next request. The current request is the prompt '{TURN_PROMPT}' and the resource {TURN_URI}; "
        f"after the last turn {VERDICT_URI} holds the reward. One episode per session."
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("toolenv")
    except PackageNotFoundError:
        return "unknown"


# -- transports ----------------------------------------------------------------------------------


async def serve_stdio(server: EpisodeServer) -> None:
    """Serve one client over stdin/stdout (the handshake loop: one episode for the process)."""
    async with stdio_server() as (read_stream, write_stream), server.lifespan(server) as state:
        await serve_loop(
            server, read_stream, write_stream, lifespan_state=state, init_options=server.create_initialization_options()
        )


def http_app(server: EpisodeServer, host: str, max_sessions: int, idle_timeout: float) -> Starlette:
    """The Streamable HTTP app (path ``/mcp``): stateful sessions, each with its own episode;
    DNS-rebinding protection on loopback hosts (the SDK's default)."""
    return server.streamable_http_app(
        host=host, max_sessions=max_sessions, session_idle_timeout=idle_timeout, stateless_http=False
    )


def run_stdio(server: EpisodeServer) -> None:
    anyio.run(serve_stdio, server)
