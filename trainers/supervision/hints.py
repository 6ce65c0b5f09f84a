"""Hint-based guidance (HBG): a hint per training task, and where it goes in a conversation.

A *hint* is text that tells the policy how the task is solved. It goes into the **system
message of the generation prompt only** (:func:`insert_hint`): the hinted rollouts are sampled
with it, but their prompt ids, old/reference log-probs and the update all use the hint-free
prompt, so the hinted samples are treated as samples of the unhinted policy (the paper's
design, docs/paper-methods.md §5.3; no importance correction).

Two writers:

:func:`builtin_hint`
    Deterministic, from the task's ground truth: a preface saying the notes need not be
    followed strictly, then per user turn the request (shortened) and the expected calls
    rendered in the training call format (positional arguments bound to their names, as the
    oracle does), or what to do on a turn that needs no call (a missing function or parameter),
    and a closing format reminder.
:class:`EndpointHintWriter`
    The paper's way: an LLM behind any OpenAI-compatible ``/chat/completions`` endpoint reads a
    transcript of the task (each question, then its ground-truth calls joined by ``;``) and
    writes a summary of at most ~300 words with step-by-step guidance and example calls; the
    summary is wrapped in the same preface and reminder.

:class:`HintBook` keeps one hint per task id and persists them as JSON, so an endpoint is asked
once per task even across resumed runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from toolenv.data import Task
from toolenv.executor import keyword_call
from toolenv.formats import Codec
from trainers.supervision.method import EpisodeHooks

HINT_PREFACE = (
    "The notes below describe how this task can be solved. They may help you, but you do not "
    "have to follow them strictly."
)
#: what to do on a turn whose ground truth is empty, by category
NO_CALL_ADVICE = {
    "miss_func": "No available function can do this yet: say so and make no call.",
    "miss_param": "A required parameter is missing: ask the user for it and make no call.",
}
DEFAULT_NO_CALL_ADVICE = "No call is needed: answer in plain text."
#: format reminders by call format; other formats get the generic one
FORMAT_REMINDERS = {
    "hermes": (
        'Write each call as a JSON object with "name" and "arguments" inside '
        "<tool_call></tool_call> tags; when a request is done, answer in plain text without any tool call."
    ),
    "python": (
        "Write calls as a Python list such as [func(arg=value)] and nothing else; when a request is "
        "done, answer in plain text without any call."
    ),
}
GENERIC_REMINDER = (
    "Write calls exactly in the format the instructions above ask for; when a request is done, "
    "answer in plain text without any call."
)
#: longest user request quoted in a built-in hint (characters)
MAX_REQUEST_CHARS = 240


def _shorten(text: str, limit: int = MAX_REQUEST_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_text(output: Any) -> str:
    """A codec's rendering as text (the OpenAI codec renders a message dict)."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict) and output.get("tool_calls"):
        return json.dumps(output["tool_calls"], ensure_ascii=False)
    return json.dumps(output, ensure_ascii=False)


def format_reminder(codec: Codec) -> str:
    return FORMAT_REMINDERS.get(codec.name, GENERIC_REMINDER)


def turn_request(task: Task, turn: int) -> str:
    """What the user asks at ``turn`` (a reveal turn of miss_func names the new functions)."""
    messages = task.turns[turn]
    if messages:
        return _shorten(" ".join(m.content for m in messages))
    revealed = task.held_out_at(turn)
    return "(new functions become available: " + ", ".join(revealed) + ")"


def no_call_advice(task: Task) -> str:
    return NO_CALL_ADVICE.get(task.category, DEFAULT_NO_CALL_ADVICE)


def expected_calls_text(task: Task, turn: int, codec: Codec) -> str:
    """The ground-truth calls of ``turn`` rendered in ``codec``'s format ("" when there are none)."""
    calls = task.ground_truth_calls[turn]
    return render_calls(task, calls, codec) if calls else ""


def render_calls(task: Task, calls: Sequence[Any], codec: Codec) -> str:
    """``calls`` of ``task`` as text in ``codec``'s format, positional arguments bound to names
    (JSON formats cannot express positional arguments)."""
    return _as_text(codec.render_calls([keyword_call(call, task.involved_classes, task.release) for call in calls]))


def builtin_hint(task: Task, codec: Codec) -> str:
    """The deterministic hint for ``task`` in ``codec``'s call format (see the module docstring)."""
    lines = [HINT_PREFACE, ""]
    for turn in range(len(task.turns)):
        lines.append(f"Request {turn + 1}: {turn_request(task, turn)}")
        calls = expected_calls_text(task, turn, codec)
        if calls:
            lines += ["Expected calls:", calls]
        else:
            lines.append(no_call_advice(task))
        lines.append("")
    lines.append(format_reminder(codec))
    return "\n".join(lines)


def task_transcript(task: Task) -> str:
    """The paper's hint-writer input: each question, then its ground-truth calls joined by ``;``."""
    parts = []
    for turn in range(len(task.turns)):
        calls = "; ".join(task.ground_truth[turn]) or "(no call: the request cannot be fulfilled yet)"
        parts.append(f"Question {turn + 1}: {turn_request(task, turn)}\nGround-truth calls: {calls}")
    return "\n\n".join(parts)


WRITER_INSTRUCTIONS = (
    "Below is a multi-turn tool-use task: each user question followed by the calls that solve it. "
    "Write a summary of at most 300 words for an assistant that will solve the same task: the key "
    "reasoning steps, the tool-usage patterns and reusable hints, then step-by-step guidance per "
    "question with example calls written in this format:\n{example}\n"
    "Do not add anything else."
)


class EndpointHintWriter:
    """Hints from an LLM behind an OpenAI-compatible endpoint (temperature 0.7 as in the paper)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        codec: Codec,
        api_key: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        timeout: float = 120.0,
    ) -> None:
        from toolenv.inference import GenerationConfig
        from toolenv.inference.endpoint import OpenAIEndpointModel

        self.codec = codec
        self.model = OpenAIEndpointModel(
            base_url,
            model,
            GenerationConfig(max_new_tokens=max_tokens, temperature=temperature),
            api_key=api_key,
            timeout=timeout,
        )

    def request(self, task: Task) -> list[dict[str, str]]:
        """The messages sent for ``task``."""
        example = "(no calls)"
        if any(task.ground_truth_calls):
            example = render_calls(task, task.ground_truth_calls[_first_call_turn(task)][:1], self.codec)
        system = WRITER_INSTRUCTIONS.format(example=example)
        return [{"role": "system", "content": system}, {"role": "user", "content": task_transcript(task)}]

    def __call__(self, task: Task) -> str:
        summary = str(self.model.generate([self.request(task)])[0]).strip()
        summary = strip_think(summary)
        if not summary:
            from toolenv.inference import ModelError

            raise ModelError(f"the hint endpoint returned an empty hint for {task.id}")
        return "\n".join([HINT_PREFACE, "", summary, "", format_reminder(self.codec)])


def _first_call_turn(task: Task) -> int:
    return next(i for i, calls in enumerate(task.ground_truth_calls) if calls)


def strip_think(text: str) -> str:
    """Text after the last ``</think>`` (reasoning models), as the paper keeps it."""
    return text.rsplit("</think>", 1)[-1].strip()


HintWriter = Callable[[Task], str]


class HintBook:
    """One hint per task id, written on first use and kept in a JSON file when ``path`` is set."""

    def __init__(self, writer: HintWriter, path: str | Path | None = None) -> None:
        self.writer = writer
        self.path = Path(path) if path is not None else None
        self.hints: dict[str, str] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.hints = dict(json.loads(self.path.read_text(encoding="utf-8")))
            except ValueError:
                raise ValueError(f"{self.path}: not a hint file (JSON object task id → hint)") from None

    def get(self, task: Task) -> str:
        if task.id not in self.hints:
            self.hints[task.id] = self.writer(task)
            self._save()
        return self.hints[task.id]

    def prepare(self, tasks: Iterable[Task]) -> None:
        """Write the hints of all ``tasks`` now (before training starts)."""
        for task in tasks:
            self.get(task)

    def _save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.hints, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(self.path)


HINT_POSITIONS = ("system", "user")


def insert_hint(messages: Sequence[dict[str, Any]], hint: str, position: str = "system") -> list[dict[str, Any]]:
    """A copy of ``messages`` with ``hint`` added for generation (the input is not modified).

    ``position="system"`` (the paper's default): ``"\\n\\n" + hint`` is appended to the system
    message (a system message holding only the hint is put first when there is none).
    ``position="user"``: a user message holding the hint is put after the last message, just
    before the assistant header the generation prompt ends with.
    """
    if position not in HINT_POSITIONS:
        raise ValueError(f"unknown hint position {position!r}; valid: {', '.join(HINT_POSITIONS)}")
    out = [dict(m) for m in messages]
    if position == "user":
        return out + [{"role": "user", "content": hint}]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{hint}"
        return out
    return [{"role": "system", "content": hint}] + out


def hinted_samples(n: int, k: int) -> frozenset[int]:
    """The samples of each group that are generated with the hint: the first ``k`` of ``n``
    (the paper's ``_0``, ``_1`` with k=2)."""
    if not 0 <= k <= n:
        raise ValueError(f"hint count {k} must be between 0 and the group size {n}")
    return frozenset(range(k))


HINTS_FILE = "hints.json"


class HintEdit:
    """A picklable ``prompt_edit``: the hint inserted for generation only."""

    def __init__(self, hint: str, position: str) -> None:
        self.hint, self.position = hint, position

    def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return insert_hint(messages, self.hint, self.position)


class HintedEpisodes(EpisodeHooks):
    """HBG's episode hooks: samples ``0..hinted-1`` of every group generate with the task's
    hint (written once per task into ``RUN/hints.json``); the update sees the hint-free
    prompt (``trainer``: a :class:`~trainers.supervision.run.SupervisedTrainer`)."""

    def __init__(self, method: Any, trainer: Any, writer: HintWriter) -> None:
        self.method, self.trainer = method, trainer
        self.chosen = hinted_samples(trainer.config.grpo.n, method.hinted)
        self.book = HintBook(writer, Path(trainer.config.run.out_dir) / HINTS_FILE)

    def edit(self, specs: list[Any]) -> None:
        for spec in specs:
            if spec.sample in self.chosen:
                spec.prompt_edit = HintEdit(self.book.get(self.trainer.task_by_id(spec.task_id)), self.method.position)
                spec.source = "hinted"
