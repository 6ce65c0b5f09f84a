"""Deterministic stand-ins for a model: the oracle policy behind the ChatModel interface and
behind a local OpenAI-compatible HTTP server (127.0.0.1 only, stops by itself)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

from toolenv.data import load_tasks
from toolenv.expert import expert_actions
from toolenv.formats import get_codec
from toolenv.inference import ChatModel


class ExpertModel(ChatModel):
    """Answers each conversation with the oracle's next action for its task. The task is
    recognised by its first user message, which is unique within one category (so use one
    category per run); ``fail_every`` makes every n-th entry answer with a plain reply only."""

    def __init__(self, call_format: str = "hermes", category: str = "base", fail_every: int = 0) -> None:
        self.codec = get_codec(call_format)
        self.name = "oracle"
        self.fail_every = fail_every
        self._by_start: dict[tuple[tuple[str, ...], str], Any] = {}
        for task in load_tasks(category):  # entries 40 and 43 start alike: the first one wins
            self._by_start.setdefault((task.involved_classes, task.turns[0][0].content), task)
        self._tools = {classes: {d["name"] for d in t.tool_docs()} for (classes, _), t in self._by_start.items()}

    def next_action(self, messages: Sequence[dict[str, Any]]) -> Any:
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        task = next(
            t
            for (classes, text), t in self._by_start.items()
            if text == first_user and all(f'"{name}"' in system for name in self._tools[classes])
        )
        done = sum(1 for m in messages if m["role"] == "assistant")
        if self.fail_every and task.index % self.fail_every == 0:
            return "I cannot help with that."
        actions = expert_actions(task, self.codec)
        return actions[done] if done < len(actions) else "done"

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        return [self.next_action(messages) for messages in conversations]


class ChatServer:
    """A local ``/v1/chat/completions`` (127.0.0.1 only) answering each request with
    ``answer(request_body)``: a string (the reply's content) or a message dict (e.g. with
    ``tool_calls``). The bodies received are kept in ``requests``.

    ``latency``: seconds every request takes (to make requests overlap); ``faults``: HTTP
    statuses the first requests are answered with, in order (e.g. ``[429, 503]``), before the
    server answers normally; ``keep_alive``: HTTP/1.1 persistent connections (the default,
    HTTP/1.0, closes each one, so that a stopped server refuses at once). The server counts
    the requests in flight and keeps the peak in ``max_in_flight``."""

    def __init__(
        self,
        answer: Callable[[dict[str, Any]], Any],
        latency: float = 0.0,
        faults: Sequence[int] = (),
        keep_alive: bool = False,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        #: the HTTP headers of each request, in order (to check what a client sends)
        self.headers: list[dict[str, str]] = []
        #: the status each request was answered with, in order
        self.statuses: list[int] = []
        #: (start, end) of each request answered normally, from time.monotonic()
        self.spans: list[tuple[float, float]] = []
        self.max_in_flight = 0
        self.in_flight = 0
        self.faults = list(faults)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            #: headers and body go out as two writes: without this, Nagle's algorithm holds the body
            #: until the client's delayed ACK (~40 ms a reply on a kept-alive connection)
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                started = time.monotonic()
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers.items()))
                    fault = server.faults.pop(0) if server.faults else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if latency:
                        time.sleep(latency)
                    if fault is not None:
                        status, reply = fault, {"error": {"message": f"fake fault {fault}", "code": fault}}
                    else:
                        status, reply = 200, server.completion(body, answer(body))
                finally:
                    with server.lock:
                        server.in_flight -= 1
                        server.statuses.append(status)
                        if fault is None:
                            server.spans.append((started, time.monotonic()))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.stopped = False

    @staticmethod
    def completion(body: dict[str, Any], output: Any) -> dict[str, Any]:
        """An OpenAI chat completion (every field a strict client reads) around ``output``."""
        message = (
            {"role": "assistant", **output} if isinstance(output, dict) else {"role": "assistant", "content": output}
        )
        message.setdefault("content", None)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (new connections are refused); idempotent."""
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeOpenAIServer(ChatServer):
    """A :class:`ChatServer` that answers with :class:`ExpertModel` (or anything with
    ``next_action(messages)``)."""

    def __init__(self, model: ExpertModel, **options: Any) -> None:
        super().__init__(lambda body: model.next_action(body["messages"]), **options)


class ModelServer(ChatServer):
    """A :class:`ChatServer` in front of any :class:`ChatModel`: each request is answered by
    ``model.generate_seeded`` on its messages, tools and seed (so that an endpoint run can be
    compared with the same model played in-process)."""

    def __init__(self, model: ChatModel, **options: Any) -> None:
        def answer(body: dict[str, Any]) -> Any:
            tools = [body["tools"]] if "tools" in body else None
            return model.generate_seeded([body["messages"]], tools, [body.get("seed", 0)])[0]

        super().__init__(answer, **options)
