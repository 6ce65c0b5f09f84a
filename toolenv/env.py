"""``BFCLEnv``: one BFCL multi-turn task per episode, as a Gymnasium environment.

Episode
    ``reset(seed, options)`` picks a task (``options["task_id"]``, with ``options["ood"]`` to
    pick one variant among several of a task file, or ``options["index"]``, else one drawn with
    the seeded RNG from the configured tasks), builds fresh backends and
    returns the system prompt (tools rendered by the call format) and the first user turn.
    ``step(action)`` takes the assistant's output (text, or an OpenAI-style message dict).
    When the call format finds tool-call structure the message is a *tool step*: its calls run
    in order on the episode's backends and the results come back as the observation (blocks
    that did not decode come back as error results). Any other message ends the user turn and
    the next user turn is returned; a miss_func reveal turn shows the held-out tools with BFCL's
    reveal sentence. After the last turn ``terminated`` is True.

OOD variants
    ``ood="rename_tools+shuffle_schema"`` with ``ood_seed=3`` plays each task as that variant
    (built on first use, deterministic in spec, seed and task id): its own tool docs, names that
    map back to the canonical backends, its call format and prompt style. ``task_file=`` plays
    tasks exported to JSON Lines (e.g. by ``toolenv ood generate``). The variants come from the
    provider registered in :mod:`toolenv.registration` (``ood_variants``).

Truncation
    As in BFCL's inference loop, the 21st tool step in one user turn (``max_steps_per_turn`` =
    20) force-quits the episode: ``truncated`` is True and the remaining turns are not played,
    so the entry fails unless that was the last turn.

Spaces
    Action: :class:`~toolenv.spaces.AgentAction` (any text, or a message dict).
    Observation: :class:`~toolenv.spaces.ToolText` (``observation_mode="text"``: the contents
    of the new messages joined by blank lines) or :class:`~toolenv.spaces.ChatMessages`
    (``"messages"``: the new chat messages, ready for a tokenizer's chat template).

Reward
    0 on every step but the last; at episode end the BFCL entry score (1.0 or 0.0) from the
    evaluator's checker, which replays the calls on fresh backends. ``info`` carries the dense
    parts at every step (JSON-serialisable, deterministic): the parse status and structural
    state of the action, the calls and results, and, when a turn closes, that turn's verdict.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import gymnasium as gym

from envs.base import json_schema
from evaluators.checker import TurnChecker
from evaluators.structure import classify
from toolenv.data import CATEGORIES, Task, load_task_file, select_tasks
from toolenv.executor import Session
from toolenv.formats import Codec, PromptStyle, ToolSpec, get_codec
from toolenv.formats.base import PARSE_ERROR_PREFIX
from toolenv.spaces import AgentAction, ChatMessages, ToolText, messages_text
from toolenv.trajectory import Step, Trajectory, TurnRecord

OBSERVATION_MODES = ("text", "messages")
#: BFCL's MAXIMUM_STEP_LIMIT: the step after the 20th in one turn force-quits the episode
DEFAULT_MAX_STEPS_PER_TURN = 20


def tool_specs(docs: Iterable[dict[str, Any]]) -> list[ToolSpec]:
    return [
        ToolSpec(doc["name"], doc, {"name": doc["name"], "description": doc.get("description", ""),
                                    "parameters": json_schema(doc.get("parameters", {"type": "dict"}))})
        for doc in docs
    ]


class BFCLEnv(gym.Env[Any, Any]):
    """BFCL multi-turn tool use; see the module docstring for spaces, reward and episode end."""

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 1}

    def __init__(
        self,
        categories: Sequence[str] | str | None = None,
        split: str = "all",
        apis: Sequence[str] | None = None,
        task_ids: Sequence[str] | None = None,
        call_format: str = "hermes",
        observation_mode: str = "text",
        max_steps_per_turn: int = DEFAULT_MAX_STEPS_PER_TURN,
        max_text_length: int = 1_000_000,
        render_mode: str | None = None,
        ood: str | None = None,
        ood_seed: int = 0,
        task_file: str | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        """See the module docstring. ``tasks``: play these task objects (official or variants,
        e.g. from :func:`toolenv.data.load_task_file`) instead of the official selection; the
        other filters still apply. Not JSON-serialisable: for programmatic use, not ``gym.make``."""
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"unknown observation_mode {observation_mode!r}; valid: {', '.join(OBSERVATION_MODES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: human, ansi")
        source = load_task_file(task_file) if task_file else (list(tasks) if tasks is not None else None)
        self.tasks: list[Task] = select_tasks(categories or CATEGORIES, split, apis, task_ids, tasks=source)
        self.codec: Codec = get_codec(call_format)
        self._training_codec = self.codec
        self.call_format = call_format
        self.ood = ood or None
        self.ood_seed = int(ood_seed)
        self._variants: dict[str, Task] = {}
        if self.ood is not None:
            from toolenv.registration import check_variant_spec

            check_variant_spec(self.ood)  # a bad spec fails here, in one line, not at reset
        self.observation_mode = observation_mode
        self.max_steps_per_turn = int(max_steps_per_turn)
        self.render_mode = render_mode
        self.action_space = AgentAction(max_text_length)
        self.observation_space = ToolText(max_text_length) if observation_mode == "text" else ChatMessages()
        self.task: Task | None = None
        self.tools: list[ToolSpec] = []
        self.trajectory: Trajectory | None = None
        self._session: Session | None = None
        self._checker: TurnChecker | None = None
        self._turn = 0
        self._steps_in_turn = 0
        self._done = True

    # -- episode ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self.task = self._variant(self._pick_task(options))
        task = self.task
        self.codec = self._codec_for(task)
        self._session = Session.for_task(task)
        self._checker = TurnChecker(task)
        self._turn, self._steps_in_turn, self._done = 0, 0, False
        self.tools = tool_specs(task.tool_docs())
        meta: dict[str, Any] = {"seed": seed, "observation_mode": self.observation_mode}
        if task.ood_spec:  # recorded so that `toolenv score` rebuilds the same variant
            meta.update(ood=task.ood_spec, ood_seed=task.ood_seed)
        self.trajectory = Trajectory(task.id, task.category, task.data_version, self.codec.name, meta=meta)
        new = self._open_turn(opening=True)
        info = {"task_id": task.id, "category": task.category, "turn": 0, "num_turns": len(task.turns),
                "tools": [tool.openai() for tool in self.tools], "data_version": task.data_version,
                "call_format": self.codec.name}
        if task.ood_spec:
            info.update(ood=task.ood_spec, ood_seed=task.ood_seed)
        return self._observation(new), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._done or self.task is None:
            raise RuntimeError("the episode is over: call reset() first")
        assert self._session is not None and self.trajectory is not None and self._checker is not None
        parsed = self.codec.parse(action)
        structure = classify(action, self.codec, parsed)
        self.trajectory.messages.append(self._assistant_message(action))
        turn_record = self.trajectory.turns[-1]
        info: dict[str, Any] = {"task_id": self.task.id, "turn": self._turn, "parse": parsed.to_dict(),
                                "structure": structure}
        if parsed.attempted:
            results = [result.text for result in self._session.execute_all(parsed.calls)]
            error_results = [PARSE_ERROR_PREFIX + error for error in parsed.errors]
            turn_record.steps.append(Step(action, parsed.status, list(parsed.calls), results, list(parsed.errors), structure))
            self._steps_in_turn += 1
            new = self._result_messages(list(parsed.calls) + [None] * len(error_results), results + error_results, parsed.call_ids)
            info.update(step=self._steps_in_turn, calls=[c.to_dict() for c in parsed.calls], results=results)
            if self._steps_in_turn > self.max_steps_per_turn:  # BFCL force-quit
                self.trajectory.truncated = True
                return self._finish(new, info, truncated=True)
            return self._observation(new), 0.0, False, False, info
        turn_record.steps.append(Step(action, parsed.status, [], [], list(parsed.errors), structure))
        verdict = self._checker.close_turn(turn_record.call_steps())
        turn_record.verdict = verdict.to_dict()
        info["turn_verdict"] = verdict.to_dict()
        self._turn += 1
        self._steps_in_turn = 0
        if self._turn >= len(self.task.turns):
            return self._finish([], info, truncated=False)
        return self._observation(self._open_turn()), 0.0, False, False, info

    def _finish(self, new: list[dict[str, Any]], info: dict[str, Any], truncated: bool) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        assert self._checker is not None and self.trajectory is not None
        verdict = self._checker.verdict()
        self.trajectory.verdict = verdict.to_dict()
        self.trajectory.reward = verdict.score
        self._done = True
        info["verdict"] = verdict.to_dict()
        return self._observation(new), verdict.score, not truncated, truncated, info

    def _pick_task(self, options: dict[str, Any]) -> Task:
        if "task_id" in options:
            # a task file may hold one task as several variants: options["ood"] picks the spec
            for task in self.tasks:
                if task.id == options["task_id"] and ("ood" not in options or task.ood_spec == options["ood"]):
                    return task
            raise ValueError(f"task {options['task_id']!r} is not among this environment's {len(self.tasks)} tasks")
        if "index" in options:
            return self.tasks[int(options["index"]) % len(self.tasks)]
        return self.tasks[int(self.np_random.integers(len(self.tasks)))]

    def _variant(self, task: Task) -> Task:
        """The task as this environment plays it: the configured OOD variant, if any (cached)."""
        if self.ood is None:
            return task
        variant = self._variants.get(task.id)
        if variant is None:
            from toolenv.registration import make_variant

            variant = self._variants[task.id] = make_variant(task, self.ood, self.ood_seed)
        return variant

    def _codec_for(self, task: Task) -> Codec:
        """The training codec, or the call format and prompt style a variant asks for."""
        options = task.format_options
        if not options:
            return self._training_codec
        return get_codec(options.get("call_format", self.call_format), PromptStyle.from_options(options))

    def _open_turn(self, opening: bool = False) -> list[dict[str, Any]]:
        """The user message(s) that open the current turn; records them in the trajectory.
        ``opening``: the first turn, preceded by the system message (the codec places the tools)."""
        assert self.task is not None and self.trajectory is not None
        held_out = self.task.held_out_at(self._turn)
        if held_out:
            revealed = tool_specs(d for d in self.task.tool_docs(revealed_up_to=self._turn) if d["name"] in held_out)
            self.tools = self.tools + revealed
            messages = [{"role": "user", "content": self.codec.reveal_message(revealed)}]
        else:
            messages = [m.to_dict() for m in self.task.turns[self._turn]]
        if opening:
            system, *messages = self.codec.opening_messages(self.tools, messages)
            self.trajectory.messages.append(system)
        self.trajectory.turns.append(TurnRecord(self._turn, messages))
        self.trajectory.messages.extend(messages)
        return [system] + messages if opening else messages

    def _result_messages(self, calls: list, results: list[str], call_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        assert self.trajectory is not None
        if self.observation_mode == "messages":
            messages = self.codec.results_messages(calls, results, call_ids)
        else:
            messages = [{"role": "tool", "content": self.codec.results_text(calls, results)}]
        self.trajectory.messages.extend(messages)
        return messages

    def _assistant_message(self, action: Any) -> dict[str, Any]:
        if isinstance(action, dict):
            return {"role": "assistant", "content": action.get("content"), "tool_calls": action.get("tool_calls")}
        return {"role": "assistant", "content": action if isinstance(action, str) else str(action)}

    def _observation(self, messages: list[dict[str, Any]]) -> Any:
        if self.observation_mode == "messages":
            return [dict(m) for m in messages]
        return messages_text(messages)

    # -- rendering -------------------------------------------------------------------------

    def render(self) -> str | None:
        text = self.transcript()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def transcript(self) -> str:
        """A readable transcript of the episode so far."""
        if self.trajectory is None:
            return ""
        lines = [f"== {self.trajectory.task_id} ({self.trajectory.call_format})"]
        for message in self.trajectory.messages:
            content = message.get("content")
            if message.get("tool_calls"):
                content = f"{content or ''} tool_calls={message['tool_calls']}"
            text = str(content)
            if message["role"] == "system" and len(text) > 400:
                text = text[:400] + f"… [{len(text)} characters]"
            lines.append(f"[{message['role']}] {text}")
        if self.trajectory.reward is not None:
            lines.append(f"== reward {self.trajectory.reward}")
        return "\n".join(lines)
