"""Deterministic stand-ins for a model: the oracle policy behind the ChatModel interface and
behind a local OpenAI-compatible HTTP server (127.0.0.1 only, stops by itself)."""

from __future__ import annotations

import json
import threading
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
    ``answer(request_body)``; the bodies received are kept in ``requests``."""

    def __init__(self, answer: Callable[[dict[str, Any]], str]) -> None:
        self.requests: list[dict[str, Any]] = []
        #: the HTTP headers of each request, in order (to check what a client sends)
        self.headers: list[dict[str, str]] = []
        requests, headers = self.requests, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                requests.append(body)
                headers.append(dict(self.headers.items()))
                reply = {"choices": [{"message": {"role": "assistant", "content": answer(body)}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeOpenAIServer(ChatServer):
    """A :class:`ChatServer` that answers with :class:`ExpertModel` (or anything with
    ``next_action(messages)``)."""

    def __init__(self, model: ExpertModel) -> None:
        super().__init__(lambda body: model.next_action(body["messages"]))
