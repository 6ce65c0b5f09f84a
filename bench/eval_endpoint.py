"""Evaluation against an OpenAI-compatible endpoint: ``toolenv eval`` beside ``bfcl generate``,
against the same local server, in the same run.

**The server** (``tests.fakes.ChatServer``: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive,
127.0.0.1 only) waits a fixed ``--latency`` per request, then answers with the expert policy
of the request's task (``toolenv.expert``, in the ``openai`` format): for each user turn one
message whose native ``tool_calls`` are the turn's ground-truth calls, then a plain reply that
ends the turn. The task is recognised by its first user message and the names of the tools
sent, the step by the number of assistant messages so far. So both clients play realistic,
passing episodes, and the requests per task are fixed by the data (two per turn with calls, one
per turn without). A fresh server per run counts the requests and the most in flight at once.

**The tasks**: ``--tasks`` multi_turn_base entries, toolenv's own selection (``toolenv eval
--categories base --limit N``, seed 0); the same ids go to ``bfcl generate`` through its
``test_case_ids_to_generate.json`` (``--run-ids``).

**Pointing ``bfcl generate`` at a custom OpenAI-compatible server.** bfcl-eval's
``OpenAICompletionsHandler`` (model_handler/api_inference/openai_completion.py) calls
``chat.completions`` through the ``openai`` SDK and builds its client from ``OPENAI_BASE_URL``
and ``OPENAI_API_KEY`` (and ``OPENAI_DEFAULT_HEADERS``). The registry entry that uses that
handler as it is, in function-calling mode, is ``openbmb/MiniCPM-SALA-FC``; the request's
``model`` field is then that name, which our server ignores. (The GPT entries use the Responses
API instead, and the local-model entries with ``--skip-server-setup`` call ``/v1/completions``
at ``REMOTE_OPENAI_BASE_URL`` or ``LOCAL_SERVER_ENDPOINT``/``LOCAL_SERVER_PORT`` with a prompt
rendered by the model's tokenizer, fetched from the hub.) ``BFCL_PROJECT_ROOT`` puts its result
files, and the ids file it reads, in a scratch folder. Its ``--num-threads N`` plays N entries
at once; toolenv runs at its default ``--concurrency`` (8), so give ``--threads 8`` to compare
the same N. Both are checked to pass every task (``toolenv score --bfcl-results`` on bfcl's
files), so the work done is the same.

**The official package goes into a venv of its own** (its pins would break ours); torch must be
pinned, or pip pulls a multi-GB CUDA build, and ``soundfile`` added: bfcl-eval imports every
handler, one of them imports ``qwen_agent``, which imports ``soundfile`` without requiring it::

    python3 -m venv /tmp/bfclenv && /tmp/bfclenv/bin/pip install bfcl-eval==2026.3.23 torch==2.13.0 soundfile

Run::

    .venv/bin/python bench/eval_endpoint.py --bfcl /tmp/bfclenv/bin/bfcl [--tasks 40] [--latency 0.3] \
        [--threads 8] [--scaling 1,2,4,8,16]

Times are the wall time of each command, start-up included (what a user waits for; ``toolenv
eval`` also scores the run and writes its three reports, ``bfcl generate`` only writes result
files), and the serving span (first request in to last reply out), where the two clients'
concurrency is compared. No other work should share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import ChatServer  # noqa: E402
from toolenv.data import Task, data_version  # noqa: E402
from toolenv.expert import DEFAULT_REPLY, expert_actions  # noqa: E402
from toolenv.formats import get_codec  # noqa: E402
from toolenv.selection import select_tasks  # noqa: E402

BFCL_MODEL = "openbmb/MiniCPM-SALA-FC"


class ExpertAnswers:
    """The server's policy: the expert's next message for the request's task (see the module
    docstring); requests it cannot place are counted in ``unknown`` and get a plain reply."""

    def __init__(self, tasks: list[Task]) -> None:
        codec = get_codec("openai")
        self.by_key: dict[tuple[str, frozenset[str]], list[Any]] = {}
        for task in tasks:
            key = (task.turns[0][0].content, frozenset(doc["name"] for doc in task.tool_docs()))
            if key in self.by_key:
                raise SystemExit(f"two tasks open alike ({task.id}); pick another --tasks")
            self.by_key[key] = expert_actions(task, codec)
        self.unknown = 0

    def __call__(self, body: dict[str, Any]) -> Any:
        messages = body["messages"]
        first = next((m.get("content") for m in messages if m.get("role") == "user"), None)
        names = frozenset(tool["function"]["name"] for tool in body.get("tools", []))
        actions = self.by_key.get((first, names))
        if actions is None:
            self.unknown += 1
            return DEFAULT_REPLY
        done = sum(1 for m in messages if m.get("role") == "assistant")
        return actions[done] if done < len(actions) else DEFAULT_REPLY


def serve(answers: ExpertAnswers, latency: float) -> ChatServer:
    return ChatServer(answers, latency=latency, keep_alive=True).__enter__()


def span(server: ChatServer) -> float:
    return max(end for _, end in server.spans) - min(start for start, _ in server.spans) if server.spans else 0.0


def run_toolenv(url: str, tasks: int, concurrency: int, out: Path) -> float:
    command = [
        sys.executable, "-m", "toolenv.cli", "eval", "--endpoint", url, "--model", "fake", "--format", "openai",
        "--categories", "base", "--limit", str(tasks), "--concurrency", str(concurrency), "--out", str(out), "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"toolenv eval failed: {done.stderr.strip()}")
    report = json.loads((out / "report.json").read_text())
    if report["summary"]["overall"] != 1.0:
        raise SystemExit(f"toolenv eval did not pass every task: {report['summary']['overall']}")
    return elapsed


def run_bfcl(bfcl: str, url: str, ids: list[str], threads: int, root: Path) -> float:
    root.mkdir(parents=True)
    (root / "test_case_ids_to_generate.json").write_text(json.dumps({"multi_turn_base": ids}))
    env = {
        **os.environ,
        "BFCL_PROJECT_ROOT": str(root),
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "not-a-key",
    }
    command = [bfcl, "generate", "--model", BFCL_MODEL, "--test-category", "multi_turn_base", "--run-ids"]
    command += ["--num-threads", str(threads)]
    started = time.perf_counter()
    with open(root / "generate.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((root / "generate.log").read_text().splitlines()[-15:])
        raise SystemExit(f"bfcl generate failed (exit {done.returncode}); the end of its output:\n{tail}")
    results = list((root / "result").rglob("*multi_turn_base_result.json"))
    scored = subprocess.run(
        [sys.executable, "-m", "toolenv.cli", "score", "--bfcl-results", str(results[0]), "--out", str(root / "score")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if scored.returncode != 0:
        raise SystemExit(f"scoring bfcl's results failed: {scored.stderr.strip()}")
    report = json.loads((root / "score" / "report.json").read_text())
    if report["summary"]["tasks"] != len(ids) or report["summary"]["overall"] != 1.0:
        raise SystemExit(f"bfcl generate did not pass every task: {report['summary']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bfcl", required=True, help="the `bfcl` executable of the official package's venv")
    parser.add_argument("--tasks", type=int, default=40, help="multi_turn_base tasks (>= 40 for the README)")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request at the server")
    parser.add_argument("--threads", type=int, default=8, help="bfcl generate --num-threads (toolenv's default is 8)")
    parser.add_argument("--scaling", default="1,2,4,8,16", help="toolenv --concurrency values for the scaling row")
    args = parser.parse_args()
    if not Path(args.bfcl).is_file():
        raise SystemExit(f"--bfcl {args.bfcl}: no such file (see this script's docstring to make it)")
    tasks = select_tasks(("base",), "all", limit=args.tasks, seed=0)
    ids = [task.id for task in tasks]
    answers = ExpertAnswers(tasks)
    print(f"data: {data_version()}; {len(ids)} multi_turn_base tasks; {args.latency:g} s per request")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-eval-endpoint-") as scratch:
        work = Path(scratch)
        server = serve(answers, args.latency)
        ours = run_toolenv(server.url, len(ids), 8, work / "toolenv")
        server.stop()
        rows.append(("toolenv eval --concurrency 8", ours, span(server), len(server.requests), server.max_in_flight))
        server = serve(answers, args.latency)
        theirs = run_bfcl(args.bfcl, server.url, ids, args.threads, work / "bfcl")
        server.stop()
        label = f"bfcl generate --num-threads {args.threads}"
        rows.append((label, theirs, span(server), len(server.requests), server.max_in_flight))
        scaling = []
        for concurrency in [int(c) for c in args.scaling.split(",")]:
            server = serve(answers, args.latency)
            elapsed = run_toolenv(server.url, len(ids), concurrency, work / f"toolenv-{concurrency}")
            server.stop()
            scaling.append((concurrency, elapsed, span(server), len(server.requests), server.max_in_flight))
    if answers.unknown:
        print(f"warning: {answers.unknown} requests named no known task")

    n = len(ids)
    print("\n| command | wall s | tasks/s | serving s | tasks/s (serving) | requests/task | max in flight |")
    print("|---|---|---|---|---|---|---|")
    for label, wall, serving, requests, peak in rows:
        print(
            f"| `{label}` | {wall:.1f} | {n / wall:.2f} | {serving:.1f} | {n / serving:.2f} | {requests / n:.2f} | {peak} |"
        )
    (_, ours_wall, ours_span, _, _), (_, theirs_wall, theirs_span, _, _) = rows
    print(
        f"\nratio toolenv / bfcl (tasks/s): {theirs_wall / ours_wall:.2f}x wall, {theirs_span / ours_span:.2f}x serving"
    )
    print("\nscaling, toolenv eval --concurrency N:\n")
    print("| N | wall s | tasks/s | serving s | tasks/s (serving) | requests/task | max in flight |")
    print("|---|---|---|---|---|---|---|")
    for concurrency, wall, serving, requests, peak in scaling:
        print(
            f"| {concurrency} | {wall:.1f} | {n / wall:.2f} | {serving:.1f} | {n / serving:.2f} | {requests / n:.2f} | {peak} |"
        )


if __name__ == "__main__":
    main()
