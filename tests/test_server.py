"""``toolenv serve`` (issue #16 item 1): the OpenEnv server plays exactly ``BFCLEnv``'s episode.

Every test runs a real uvicorn server on loopback, in a thread of the test process, and talks
to it over real sockets: 64 concurrent clients (WebSocket and HTTP, every call format) play
oracle episodes and get exactly the in-process results; killed and idle clients free their
sessions; malformed requests get one-line 4xx errors while the server keeps serving; OpenEnv's
own validator and client accept the server. Skipped without the ``server`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("openenv.core.env_server", reason="needs the server extra: pip install -e '.[server]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the server extra")
httpx = pytest.importorskip("httpx")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

from envs._official import DataError  # noqa: E402
from integrations.server.app import ToolenvServer, create_app  # noqa: E402
from integrations.server.client import ServerError, ToolenvClient, ToolenvEnvClient  # noqa: E402
from integrations.server.environment import ServeConfig  # noqa: E402
from toolenv.data import load_tasks  # noqa: E402
from toolenv.env import BFCLEnv  # noqa: E402
from toolenv.expert import expert_actions  # noqa: E402
from toolenv.formats import CODECS  # noqa: E402
from toolenv.registration import make_variant  # noqa: E402

MAX_BODY = 64 * 1024
TASK = "multi_turn_base_3"


# -- a live server on loopback -------------------------------------------------------------------


@contextlib.contextmanager
def serving(config: ServeConfig) -> Iterator[tuple[str, ToolenvServer]]:
    """``(base URL, server)`` of a uvicorn server running ``create_app(config)`` in a thread."""
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", ws_max_size=config.max_body_bytes))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.server
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served-tasks")


@pytest.fixture(scope="module")
def live_server(task_dir: Path) -> Iterator[tuple[str, ToolenvServer]]:
    config = ServeConfig(max_sessions=64, idle_timeout=120, max_body_bytes=MAX_BODY, task_dirs=(task_dir,))
    with serving(config) as pair:
        yield pair


@pytest.fixture
def live(live_server: tuple[str, ToolenvServer]) -> tuple[str, ToolenvServer]:
    """The shared server, once the sessions of earlier tests are gone (a WebSocket session
    ends a moment after its client closes: the tests count sessions exactly)."""
    assert wait_for(lambda: live_server[1].session_counts()["active"] == 0)
    return live_server


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- the same episode in-process and served --------------------------------------------------------


def as_json(value: Any) -> Any:
    """What a value looks like after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(value))


def in_process(task_id: str, reset_options: dict[str, Any] | None = None, **env_kwargs: Any) -> tuple[list, list]:
    """``(actions, record)``: the expert's actions for the episode and what ``BFCLEnv`` returned,
    ``[obs, reward, terminated, truncated, info]`` per reset and step."""
    env = BFCLEnv(**env_kwargs)
    obs, info = env.reset(options={"task_id": task_id, **(reset_options or {})})
    record = [[obs, None, False, False, info]]
    actions = expert_actions(env.task, env.codec)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        record.append([obs, reward, terminated, truncated, info])
        if terminated or truncated:
            break
    return actions, as_json(record)


def served(url: str, transport: str, actions: list, barrier: threading.Barrier | None = None, **options: Any) -> list:
    """The same record, from a client of the server (``options`` go to ``reset``)."""
    with ToolenvClient(url, transport=transport) as client:
        first = client.reset(**options)
        record = [[first.content, first.reward, first.terminated, first.truncated, first.info]]
        if barrier is not None:
            barrier.wait(timeout=120)
        for action in actions:
            obs = client.step(action)
            record.append([obs.content, obs.reward, obs.terminated, obs.truncated, obs.info])
            if obs.done:
                break
        assert client.state().done == obs.done
    return as_json(record)


def test_64_concurrent_clients_get_exactly_the_serial_results(live: tuple[str, ToolenvServer]) -> None:
    url, server = live
    tasks = load_tasks()[::12][:64]  # all four categories
    cases = []
    for number, task in enumerate(tasks):
        call_format = list(CODECS)[number % len(CODECS)]
        mode = ("text", "messages")[number // len(CODECS) % 2]
        actions, expected = in_process(task.id, call_format=call_format, observation_mode=mode)
        options = {"task_id": task.id, "call_format": call_format, "observation_mode": mode}
        cases.append((("ws", "http")[number % 2], actions, options, expected))
    assert {t.category for t in tasks} == {"base", "miss_func", "miss_param", "long_context"}
    assert all(expected[-1][1] == 1.0 for *_, expected in cases)  # the oracle solves each

    at_peak: dict[str, Any] = {}

    def peak() -> None:  # every client has reset and none has closed: all 64 sessions are open
        at_peak["counts"] = server.session_counts()
        for transport in ("http", "ws"):
            try:
                ToolenvClient(url, transport=transport).reset(task_id=TASK)
            except ServerError as exc:
                at_peak[transport] = exc.status

    barrier = threading.Barrier(len(cases), action=peak)
    results: list[Any] = [None] * len(cases)

    def play(index: int) -> None:
        transport, actions, options, _ = cases[index]
        try:
            results[index] = served(url, transport, actions, barrier, **options)
        except Exception as exc:  # noqa: BLE001 - reported below, with the case
            results[index] = exc
            barrier.abort()

    threads = [threading.Thread(target=play, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    errors = [(cases[i][2], r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    errors.sort(key=lambda e: isinstance(e[1], threading.BrokenBarrierError))
    assert not errors, errors[:3]
    for (transport, _, options, expected), result in zip(cases, results):
        assert result == expected, (transport, options)
    assert at_peak["counts"] == {"active": 64, "max": 64, "http": 32, "websocket": 32}
    assert at_peak["http"] == 503 and at_peak["ws"] == "CAPACITY_REACHED"  # bounded: the 65th waits
    assert wait_for(lambda: server.session_counts()["active"] == 0)


OTHER = "multi_turn_miss_param_7"


@pytest.mark.parametrize(
    ("options", "env_kwargs"),
    [
        ({"category": "miss_func", "index": 5}, {"categories": ["miss_func"]}),
        (
            {"task_id": OTHER, "ood": "rename_tools+shuffle_schema", "ood_seed": 3},
            {"ood": "rename_tools+shuffle_schema", "ood_seed": 3},
        ),
        (
            {"task_id": OTHER, "call_format": "python", "observation_mode": "messages"},
            {"call_format": "python", "observation_mode": "messages"},
        ),
        (
            {"task_id": OTHER, "data_version": "2025.10.2", "call_format": "xml"},
            {"data_version": "2025.10.2", "call_format": "xml"},
        ),
    ],
    ids=["category-index", "ood", "python-messages", "data-version"],
)
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_reset_options_play_the_env_they_name(
    live: tuple[str, ToolenvServer], transport: str, options: dict, env_kwargs: dict
) -> None:
    try:
        env = BFCLEnv(**env_kwargs)
    except DataError as exc:  # that release's wheel cannot be fetched here
        pytest.skip(str(exc))
    env.reset(options={"task_id": options["task_id"]} if "task_id" in options else {"index": options["index"]})
    actions, expected = in_process(env.task.id, **env_kwargs)
    assert served(live[0], transport, actions, **options) == expected
    assert expected[-1][1] == 1.0


def test_a_task_file_inside_a_served_folder_and_its_variants(live: tuple[str, ToolenvServer], task_dir: Path) -> None:
    url, _ = live
    task = next(t for t in load_tasks() if t.id == TASK)
    specs = ("rename_tools", "rename_params")
    (task_dir / "tasks.jsonl").write_text("".join(make_variant(task, s, 1).to_json() + "\n" for s in specs))
    for spec, transport in zip(specs, ("ws", "http")):
        path = str(task_dir / "tasks.jsonl")
        actions, expected = in_process(TASK, {"ood": spec}, task_file=path)
        got = served(url, transport, actions, task_file="tasks.jsonl", task_id=TASK, file_variant=spec)
        assert got == expected and expected[-1][1] == 1.0
        assert expected[0][4]["ood"] == spec
    with ToolenvClient(url, transport="http") as client:
        with pytest.raises(ServerError) as refused:  # a client never names other paths
            client.reset(task_file=str(Path(__file__)), task_id=TASK)
    assert refused.value.status == 403


# -- OpenEnv's own tools accept the server ---------------------------------------------------------


def test_openenv_validator_and_client_accept_the_server(live: tuple[str, ToolenvServer]) -> None:
    from openenv.cli._validation import validate_running_environment

    url, server = live
    report = validate_running_environment(url)
    assert report["passed"], [c for c in report["criteria"] if not c["passed"]]
    assert report["mode"] == "simulation"
    schema = httpx.get(url + "/schema").json()
    assert {"content", "tool_calls"} <= set(schema["action"]["properties"])
    assert {"done", "reward", "metadata", "content", "info"} <= set(schema["observation"]["properties"])

    actions, expected = in_process(TASK, call_format="openai")

    async def play() -> tuple[Any, Any]:
        async with ToolenvEnvClient(base_url=url) as env:
            result = await env.reset(task_id=TASK, call_format="openai")
            for action in actions:
                result = await env.step(action)
            return result, await env.state()

    result, state = asyncio.run(play())
    assert result.done and result.reward == 1.0 == expected[-1][1]
    assert result.observation.info == expected[-1][4]
    assert (state.task_id, state.step_count, state.done) == (TASK, len(actions), True)
    assert wait_for(lambda: server.session_counts()["active"] == 0)


# -- errors: one line, 4xx, and the server keeps serving -------------------------------------------


def one_line_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and 0 < len(detail) < 400
    return detail


def test_bad_requests_get_one_line_4xx_errors_and_the_server_keeps_serving(live: tuple[str, ToolenvServer]) -> None:
    url, server = live
    with httpx.Client(base_url=url) as http:
        sid = http.post("/reset", json={"task_id": TASK}).json()["session_id"]
        step = "/step"
        assert "malformed JSON" in one_line_error(http.post(step, content=b'{"session_id": '), 400)
        assert "JSON object" in one_line_error(http.post(step, content=b"[1, 2]"), 400)
        assert "unknown session" in one_line_error(http.post(step, json={"session_id": "nope", "action": {}}), 404)
        one_line_error(http.get("/state", params={"session_id": "nope"}), 404)
        one_line_error(http.post("/step", json={"action": {"content": "hi"}}), 400)  # no session_id
        big = {"session_id": sid, "action": {"content": "x" * (MAX_BODY + 1)}}
        assert "larger than" in one_line_error(http.post(step, json=big), 413)
        for action in ("just text", {"content": 5}, {"tool_calls": "ls()"}, {"contnet": "x"}, {"role": "user"}):
            one_line_error(http.post(step, json={"session_id": sid, "action": action}), 422)
        one_line_error(http.post("/reset", json={"session_id": sid, "task_id": "multi_turn_base_99999"}), 400)
        one_line_error(http.post("/reset", json={"session_id": sid, "colour": "blue"}), 422)
        one_line_error(http.post("/reset", json={"session_id": sid, "call_format": "morse"}), 400)
        refused = {"session_id": sid, "call_format": "python", "task_id": "multi_turn_base_99999"}
        one_line_error(http.post("/reset", json=refused), 400)  # a new selection, refused: nothing changes
        one_line_error(http.post("/reset", json={"seed": -1}), 422)
        # none of the refused requests touched the episode: it plays to the end, then 409
        actions, expected = in_process(TASK)
        for action in actions:
            last = http.post(step, json={"session_id": sid, "action": {"content": action}}).json()
        assert last["done"] and last["reward"] == 1.0 == expected[-1][1]
        assert "reset first" in one_line_error(http.post(step, json={"session_id": sid, "action": {}}), 409)
        assert http.post("/close", json={"session_id": sid}).json() == {"session_id": sid, "closed": True}
        one_line_error(http.post("/close", json={"session_id": sid}), 404)
    assert server.session_counts()["active"] == 0  # refused resets opened nothing


def test_bad_websocket_messages_get_errors_and_the_session_goes_on(live: tuple[str, ToolenvServer]) -> None:
    url, server = live
    ws_url = url.replace("http://", "ws://") + "/ws"
    actions, expected = in_process(TASK)
    with ws_connect(ws_url) as ws:

        def call(message: str) -> dict:
            ws.send(message)
            return json.loads(ws.recv(timeout=30))

        assert call(json.dumps({"type": "reset", "data": {"task_id": TASK}}))["type"] == "observation"
        assert call("{not json")["data"]["code"] == "INVALID_JSON"
        assert call(json.dumps({"type": "step", "data": {"content": 5}}))["data"]["code"] == "VALIDATION_ERROR"
        refused = call(json.dumps({"type": "reset", "data": {"colour": "blue"}}))["data"]
        assert "colour" in refused["message"] and "\n" not in refused["message"]
        assert call(json.dumps({"type": "launch"}))["data"]["code"] == "UNKNOWN_TYPE"
        assert call(json.dumps({"type": "reset", "data": {"task_id": TASK}}))["type"] == "observation"
        for action in actions:
            last = call(json.dumps({"type": "step", "data": {"content": action}}))["data"]
        assert last["done"] and last["reward"] == expected[-1][1] == 1.0
    with ws_connect(ws_url) as ws:  # an oversized message closes the socket (1009) and frees its session
        ws.send(json.dumps({"type": "reset", "data": {"task_id": TASK}}))
        ws.recv(timeout=30)
        ws.send(json.dumps({"type": "step", "data": {"content": "x" * (MAX_BODY + 1)}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert wait_for(lambda: server.session_counts()["active"] == 0)


# -- sessions end: killed clients, idle clients ----------------------------------------------------

CLIENT = """
import json, sys, time
import httpx
from websockets.sync.client import connect
url = sys.argv[1]
ws = connect(url.replace("http://", "ws://") + "/ws")
ws.send(json.dumps({"type": "reset", "data": {"task_id": sys.argv[2]}})); ws.recv()
ws.send(json.dumps({"type": "step", "data": {"content": "I will look."}})); ws.recv()
sid = httpx.post(url + "/reset", json={"task_id": sys.argv[2]}).json()["session_id"]
httpx.post(url + "/step", json={"session_id": sid, "action": {"content": "I will look."}})
print("ready", sid, flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def killed_client(url: str) -> Iterator[str]:
    """A client process holding one WebSocket and one HTTP session mid-episode, SIGKILLed on
    exit; yields the HTTP session's id."""
    process = subprocess.Popen([sys.executable, "-c", CLIENT, url, TASK], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, session_id = process.stdout.readline().split()
        assert ready == "ready"
        yield session_id
    finally:
        process.kill()
        process.wait(10)


def test_a_killed_websocket_client_frees_its_session(live: tuple[str, ToolenvServer]) -> None:
    url, server = live
    with killed_client(url) as session_id:
        assert server.session_counts() == {"active": 2, "max": 64, "http": 1, "websocket": 1}
    # the socket closes with the process: freed at once, long before the 120 s idle timeout
    assert wait_for(lambda: server.session_counts()["websocket"] == 0)
    # its HTTP session has no connection to lose: it lives until closed or reaped (next test)
    assert server.session_counts()["http"] == 1
    assert httpx.post(url + "/close", json={"session_id": session_id}).json()["closed"] is True
    assert server.session_counts()["active"] == 0


def test_idle_sessions_are_reaped() -> None:
    config = ServeConfig(max_sessions=4, idle_timeout=1.0, max_body_bytes=MAX_BODY)
    with serving(config) as (url, server):
        with killed_client(url):  # a killed client's HTTP session too (its socket may idle out first)
            pass
        with httpx.Client(base_url=url) as http:
            sid = http.post("/reset", json={"task_id": TASK}).json()["session_id"]
            with ws_connect(url.replace("http://", "ws://") + "/ws") as ws:
                ws.send(json.dumps({"type": "reset", "data": {"task_id": TASK}}))
                ws.recv(timeout=30)
                for _ in range(8):  # a session in use is not idle, however long it lives
                    time.sleep(0.2)
                    ws.send(json.dumps({"type": "state"}))
                    assert json.loads(ws.recv(timeout=30))["type"] == "state"
                with pytest.raises(ConnectionClosed) as closed:  # then idle: closed with 1001
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert wait_for(lambda: server.session_counts()["active"] == 0)
            assert "unknown session" in one_line_error(
                http.post("/step", json={"session_id": sid, "action": {"content": "hi"}}), 404
            )
            assert http.post("/reset", json={"task_id": TASK}).status_code == 200  # and it serves on
