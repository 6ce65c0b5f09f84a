"""``toolenv mcp`` (issue #16 item 5): one BFCL task's tools behind an MCP server.

Real servers in subprocesses, real MCP clients from the ``mcp`` package: over stdio an oracle
episode (each ground-truth call one MCP tool call, ``end_turn`` between turns) gets exactly
``BFCLEnv``'s results and reward 1.0 from the verdict; the tools carry the task's schemas;
hostile calls get error results and the session goes on; a miss_func task's tool list changes
(with ``notifications/tools/list_changed``) when the held-out tools are revealed; over
Streamable HTTP two concurrent sessions of one server keep separate backends. Skipped without
the ``mcp`` extra.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

pytest.importorskip("mcp", reason="needs the mcp extra: pip install -e '.[mcp]'")
anyio = pytest.importorskip("anyio")
from mcp import Client, StdioServerParameters  # noqa: E402

from integrations.mcp.episode import Episode, EpisodeError, env_kwargs, load_task  # noqa: E402
from toolenv.data import Task, get_task  # noqa: E402
from toolenv.env import BFCLEnv  # noqa: E402
from toolenv.executor import keyword_call  # noqa: E402
from toolenv.formats import get_codec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = "multi_turn_base_0"
MISS_FUNC = "multi_turn_miss_func_3"
TIMEOUT = 30  # seconds any one client may take (a hung server fails the test, never the run)


def server_command(task_id: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "toolenv.cli", "mcp", "--task", task_id, *options]


@contextlib.asynccontextmanager
async def stdio_client(task_id: str, notes: list[Any] | None = None) -> AsyncIterator[Client]:
    """An MCP client of a fresh stdio server process (one episode); ``notes`` collects the
    server's notifications."""

    async def on_message(message: Any) -> None:
        if notes is not None:
            notes.append(message)

    params = StdioServerParameters(command=server_command(task_id)[0], args=server_command(task_id)[1:], cwd=str(ROOT))
    async with Client(params, message_handler=on_message) as client:
        yield client


def oracle_turns(task: Task) -> list[list[tuple[str, dict[str, Any]]]]:
    """The ground truth as MCP tool calls: per turn, (name, keyword arguments) in order."""
    turns = [
        [keyword_call(call, task.involved_classes, task.release) for call in turn] for turn in task.ground_truth_calls
    ]
    assert not any(call.args for turn in turns for call in turn)  # every argument has its name
    return [[(call.name, dict(call.kwargs)) for call in turn] for turn in turns]


def in_process_results(task: Task) -> list[str]:
    """The result texts of the same calls, one per assistant message, played on ``BFCLEnv``."""
    env = BFCLEnv(tasks=[task], call_format="openai", observation_mode="messages")
    env.reset(options={"task_id": task.id})
    codec, results = get_codec("openai"), []
    for turn in task.ground_truth_calls:
        for call in turn:
            observation, *_ = env.step(codec.render_calls([keyword_call(call, task.involved_classes, task.release)]))
            results += [message["content"] for message in observation]
        env.step("done")
    assert env.trajectory is not None and env.trajectory.reward == 1.0
    return results


async def play_oracle(client: Client, task: Task, notes: list[Any] | None = None) -> list[str]:
    """Play the ground truth through ``client``; the result texts in order."""
    results: list[str] = []
    for index, turn in enumerate(oracle_turns(task)):
        offered = {tool.name for tool in (await client.list_tools()).tools}
        for name, arguments in turn:
            assert name in offered, f"turn {index}: {name} is not offered"
            result = await client.call_tool(name, arguments)
            results.append(result.content[0].text)
        reply = await client.call_tool("end_turn", {"reply": "Done."})
        assert not reply.is_error, reply.content[0].text
    return results


async def verdict(client: Client) -> dict[str, Any]:
    return json.loads((await client.read_resource("toolenv://verdict")).contents[0].text)


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def run(test: Any) -> None:
    async def bounded() -> None:
        with anyio.fail_after(TIMEOUT):
            await test()

    anyio.run(bounded)


# -- stdio ----------------------------------------------------------------------------------------


def test_an_oracle_episode_over_stdio_plays_bfclenv_and_scores_1() -> None:
    task = get_task(BASE)
    expected = in_process_results(task)

    async def test() -> None:
        async with stdio_client(BASE) as client:
            assert client.protocol_version == "2025-11-25"  # the handshake era: one session
            first = (await client.read_resource("toolenv://turn")).contents[0].text
            assert first == task.turns[0][0].content
            prompt = await client.get_prompt("turn")
            assert [m.content.text for m in prompt.messages] == [first]
            assert await play_oracle(client, task) == expected  # the same episode as BFCLEnv's
            state = await verdict(client)
            assert state["done"] and state["reward"] == 1.0 and state["verdict"]["passed"]
            assert len(state["turn_verdicts"]) == len(task.turns)
            over = await client.call_tool("ls", {})
            assert over.is_error and "episode is over" in over.content[0].text

    run(test)


def test_tools_carry_the_schemas_and_hostile_calls_get_error_results() -> None:
    task = get_task(BASE)
    env = BFCLEnv(tasks=[task], call_format="openai")
    _, info = env.reset(options={"task_id": task.id})
    schemas = {tool["function"]["name"]: tool["function"] for tool in info["tools"]}

    async def test() -> None:
        async with stdio_client(BASE) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == set(schemas) | {"end_turn"}
            for name, function in schemas.items():
                assert tools[name].input_schema == function["parameters"]
                assert tools[name].description == function["description"]
            assert tools["end_turn"].input_schema["required"] == ["reply"]

            hostile = [
                ("no_such_tool", {"x": 1}),  # unknown tool: the executor's error result
                ("__import__", {"name": "os"}),  # never reachable, never evaluated
                ("not a name", {}),  # not an identifier: a decode error
                ("cd", {"folder": 12}),  # wrong argument type
                ("cd", {"bogus": "a"}),  # unknown argument
                ("cd", {"folder": "x" * 1_100_000}),  # oversized: refused before the env
                ("end_turn", {}),  # no reply
                ("end_turn", {"reply": 5}),  # not a string
            ]
            for name, arguments in hostile:
                result = await client.call_tool(name, arguments)
                assert result.is_error, (name, result.content[0].text[:200])
            assert not (await client.call_tool("touch", {"file_name": "big.txt"})).is_error
            huge = await client.call_tool("echo", {"content": "y" * 200_000, "file_name": "big.txt"})
            assert not huge.is_error  # a large but legal argument is simply played
            read = await client.call_tool("cat", {"file_name": "big.txt"})
            assert json.loads(read.content[0].text) == {"file_content": "y" * 200_000}
            state = await verdict(client)
            assert state["turn"] == 0 and not state["done"]  # nothing above ended the turn
            listing = await client.call_tool("ls", {})
            assert not listing.is_error and "big.txt" in listing.content[0].text  # the session goes on

    run(test)


def test_a_miss_func_task_reveals_its_tools_after_the_turn() -> None:
    task = get_task(MISS_FUNC)
    held_out = set(task.held_out_names)
    assert held_out

    async def test() -> None:
        notes: list[Any] = []
        async with stdio_client(MISS_FUNC, notes) as client:
            before = {tool.name for tool in (await client.list_tools()).tools}
            assert not before & held_out
            reveal = await client.call_tool("end_turn", {"reply": "I cannot do that with these tools."})
            assert "now available" in reveal.content[0].text
            assert any(getattr(note, "method", "") == "notifications/tools/list_changed" for note in notes)
            after = {tool.name for tool in (await client.list_tools()).tools}
            assert after == before | held_out
            # the rest of the episode, from the reveal turn on
            for name, arguments in [c for turn in oracle_turns(task)[1:2] for c in turn]:
                assert not (await client.call_tool(name, arguments)).is_error
            await client.call_tool("end_turn", {"reply": "Done."})
            for name, arguments in [c for turn in oracle_turns(task)[2:] for c in turn]:
                await client.call_tool(name, arguments)
            await client.call_tool("end_turn", {"reply": "Done."})
            assert (await verdict(client))["reward"] == 1.0

    run(test)


def test_the_episode_refuses_a_reply_that_reads_as_calls_and_keeps_bfcls_step_limit() -> None:
    task = get_task(BASE)
    episode = Episode(task, {"call_format": "hermes"})
    with pytest.raises(EpisodeError, match="reads as a tool call"):
        episode.end_turn('<tool_call>{"name": "ls", "arguments": {}}</tool_call>')
    assert episode.env.trajectory is not None and not episode.env.trajectory.turns[0].steps  # nothing ran
    outcomes = [episode.call_tool("ls", {}) for _ in range(episode.env.max_steps_per_turn + 1)]
    assert not any(o.truncated for o in outcomes[:-1]) and outcomes[-1].truncated  # BFCL's force-quit
    state = episode.state()
    assert state["done"] and state["truncated"] and state["reward"] == 0.0
    with pytest.raises(EpisodeError, match="episode is over"):
        episode.call_tool("ls", {})


def test_an_ood_variant_is_served_in_its_own_names_and_still_scores_1() -> None:
    options = {"ood": "rename_tools:opaque+python_list_format", "ood_seed": 3}
    task = load_task(MISS_FUNC, **env_kwargs(**options))
    episode = Episode(task, options)
    canonical = {tool.name for tool in Episode(get_task(MISS_FUNC)).tools}
    assert not {tool.name for tool in episode.tools} & canonical  # only the variant's names
    for turn in oracle_turns(task):
        for name, arguments in turn:
            assert not episode.call_tool(name, arguments).is_error
        episode.end_turn("Done.")
    assert episode.state()["reward"] == 1.0 and episode.state()["ood"] == options["ood"]


# -- Streamable HTTP --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server(task_id: str) -> Iterator[str]:
    """A ``toolenv mcp --transport http`` process on loopback; its MCP URL."""
    port = free_port()
    process = subprocess.Popen(
        server_command(task_id, "--transport", "http", "--port", str(port)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def test_two_http_sessions_on_one_server_keep_separate_backends() -> None:
    task = get_task(BASE)
    expected = in_process_results(task)

    async def test() -> None:
        async with Client(url) as first, Client(url) as second:
            assert first.protocol_version == second.protocol_version == "2025-11-25"
            created = await first.call_tool("touch", {"file_name": "only_in_first.txt"})
            assert not created.is_error
            assert "only_in_first.txt" in (await first.call_tool("ls", {})).content[0].text
            assert "only_in_first.txt" not in (await second.call_tool("ls", {})).content[0].text
            await first.call_tool("end_turn", {"reply": "Done."})
            assert (await verdict(first))["turn"] == 1 and (await verdict(second))["turn"] == 0
        async with Client(url) as third:  # a new session is a new episode: the oracle scores 1.0
            assert await play_oracle(third, task) == expected
            assert (await verdict(third))["reward"] == 1.0
        with pytest.raises(Exception) as refused:  # the 2026-07-28 era has no sessions: refused
            async with Client(url, mode="2026-07-28") as modern:
                await modern.list_tools()
        assert "one episode per MCP session" in " ".join(str(e) for e in leaves(refused.value))

    with http_server(BASE) as url:
        run(test)
