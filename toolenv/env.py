"""``BFCLEnv``: one BFCL multi-turn task per episode, as a Gymnasium environment.

Everything an agent needs (spaces, reward, episode end, arguments, ``info`` keys, attributes)
is in the class docstring, so that ``help(env.unwrapped)`` is enough; a test checks that every
constructor argument and every ``info`` key an episode emits is documented there.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import gymnasium as gym

from toolenv.checker import TurnChecker
from toolenv.data import CATEGORIES, Task, load_task_file
from toolenv.executor import Session
from toolenv.formats import Codec, PromptStyle, ToolSpec, get_codec, tool_specs
from toolenv.formats.base import PARSE_ERROR_PREFIX
from toolenv.selection import select_tasks
from toolenv.spaces import AgentAction, ChatMessages, ToolText, messages_text
from toolenv.structure import classify
from toolenv.trajectory import Step, Trajectory, TurnRecord

OBSERVATION_MODES = ("text", "messages")
#: BFCL's MAXIMUM_STEP_LIMIT: the step after the 20th in one turn force-quits the episode
DEFAULT_MAX_STEPS_PER_TURN = 20


def _copied(action: Any) -> Any:
    """A deep copy of a dict action, so that a caller reusing or mutating its dict afterwards
    does not rewrite the recorded history; other actions (immutable text) as they are."""
    if not isinstance(action, Mapping):
        return action
    try:
        return copy.deepcopy(action)
    except (TypeError, RecursionError, copy.Error):  # uncopyable contents: keep the object itself
        return action


class BFCLEnv(gym.Env[Any, Any]):
    """BFCL-V3 multi-turn tool use: one official (or OOD variant) task per episode.

    ## Description

    Each episode is one BFCL multi-turn entry: a user asks for something over several turns,
    and the agent answers each turn with any number of *tool steps* (messages holding tool
    calls in the configured call format) followed by a plain reply, which ends the turn. The
    calls run on fresh, stateful backends (file system, vehicle, trading, travel, twitter,
    message, ticket, math) through a safe executor; the BFCL checker scores the episode.

    ## Action Space

    :class:`~toolenv.spaces.AgentAction`: the assistant's output, either

    - a ``str`` of at most ``max_text_length`` characters, decoded by the call format
      (``call_format``; see :mod:`toolenv.formats`), or
    - an OpenAI-style message dict ``{"role": "assistant", "content": str | None,
      "tool_calls": [{"id": str, "type": "function", "function": {"name": str,
      "arguments": <JSON string or object>}}]}``, accepted in *every* call format: a non-empty
      ``tool_calls`` runs exactly those calls (its ``content`` counts as text outside the calls
      and is not searched for more), a dict without ``tool_calls`` is read as its ``content``
      text. Malformed ``tool_calls`` entries come back as error results; nothing raises.

    A message in which the format finds call structure is a tool step; any other message is a
    reply and closes the user turn.

    ## Observation Space

    ``observation_mode="text"``: :class:`~toolenv.spaces.ToolText`, the contents of the new
    messages joined by blank lines. ``observation_mode="messages"``:
    :class:`~toolenv.spaces.ChatMessages`, the new chat messages (``role``/``content`` dicts,
    plus ``tool_call_id`` in the openai format), ready for a tokenizer's chat template.
    ``reset`` returns the system message (the tools rendered by the call format) and the first
    user turn; a tool step returns its results (one per call, then one
    ``"Error: the tool call could not be decoded: …"`` per block that did not decode); a reply
    returns the next turn's user message(s) (a miss_func reveal turn shows the held-out tools
    with BFCL's reveal sentence); the last reply returns nothing (``""`` or ``[]``).

    ## Rewards

    0.0 on every step but the last. The last step returns the BFCL entry score, 1.0 or 0.0,
    from the evaluator's checker (it replays the calls on fresh backends and compares state and
    results with the ground truth, turn by turn). The dense parts are in ``info``.

    ## Starting State

    ``reset(seed=None, options=None)`` picks the task: ``options["task_id"]`` (with
    ``options["ood"]`` = a spec string to choose among several variants of that id in a task
    file), else ``options["index"]`` (modulo ``len(tasks)``), else one drawn with the seeded
    RNG from ``tasks``. Backends start from the task's initial configuration.

    ## Episode End

    - ``terminated`` is True after the reply that closes the last user turn.
    - ``truncated`` is True when one user turn gets more than ``max_steps_per_turn`` tool steps
      (BFCL force-quits at the 21st): the remaining turns are not played, so the entry fails
      unless that was the last turn. ``terminated`` is then False.

    Stepping after either raises ``RuntimeError``; call ``reset()``.

    ## Arguments

    - ``categories`` (``Sequence[str] | str | None``, default ``None`` = all four): BFCL
      categories, ``"base"``, ``"miss_func"``, ``"miss_param"``, ``"long_context"`` (the
      ``multi_turn_`` prefix is optional).
    - ``split`` (``str``, default ``"all"``): ``"all"``, or the paper's ``"train"``/``"test"``
      halves (100 entry indices each, the same in every category).
    - ``apis`` (``Sequence[str] | None``, default ``None`` = any): keep tasks involving one of
      these APIs, by class name (``"TravelAPI"``) or short name (``"travel"``), any case.
    - ``task_ids`` (``Sequence[str] | None``, default ``None``): keep only these task ids
      (``"multi_turn_base_5"``).
    - ``call_format`` (``str``, default ``"hermes"``): ``hermes``, ``python``, ``openai``,
      ``xml`` or ``json_block`` (see :mod:`toolenv.formats`).
    - ``observation_mode`` (``str``, default ``"text"``): ``"text"`` or ``"messages"``.
    - ``max_steps_per_turn`` (``int``, default ``20``): tool steps allowed in one user turn
      before the episode is truncated (BFCL's limit).
    - ``max_text_length`` (``int``, default ``1_000_000``): the longest text the action and
      text observation spaces contain.
    - ``render_mode`` (``str | None``, default ``None``): ``"human"`` (``render()`` prints the
      transcript) or ``"ansi"`` (``render()`` returns it).
    - ``ood`` (``str | None``, default ``None``): an OOD variant spec such as
      ``"rename_tools+shuffle_schema"`` (see ``toolenv ood list``); every task is played as
      that variant (built on first use, deterministic in spec, seed and task id): its own tool
      docs, names mapped back to the canonical backends, its call format and prompt style.
    - ``ood_seed`` (``int``, default ``0``): the seed of those variants.
    - ``task_file`` (``str | None``, default ``None``): play the tasks of this JSON Lines file
      (e.g. ``tasks.jsonl`` from ``toolenv ood generate``) instead of the official ones; the
      other filters still apply.
    - ``tasks`` (``Sequence[Task] | None``, default ``None``): play these task objects (e.g.
      from :func:`toolenv.data.load_task_file`); filters apply. Not JSON-serialisable: for
      programmatic use, not ``gym.make``.
    - ``keep_positional`` (``bool``, default ``False``): in the ``python`` call format, bind
      positional arguments to parameter names instead of dropping them. By default the format
      decodes as BFCL does, and BFCL drops them (``cd('docs')`` runs as ``cd()``); ``info["parse"]``
      then counts such calls under ``positional_dropped``.
    - ``data_version`` (``str | None``, default ``None``): the bfcl-eval release to play,
      ``"2026.3.23"`` (the default release) or ``"2025.10.2"`` (the paper's data); its tasks, tool
      docs and backend behaviour. ``None``: the process's release (``TOOLENV_DATA_VERSION``,
      else the default). Tasks given by ``task_file``/``tasks`` carry their own release.

    Bad values raise a one-line ``ValueError`` (or :class:`envs._official.DataError`, for the
    task filters) that lists the valid ones.

    ## Info

    JSON-serialisable and deterministic. At ``reset``:

    - ``task_id``: the task's id (``"multi_turn_base_5"``).
    - ``category``: its category (``"base"``, …).
    - ``turn``: 0, the index of the current user turn.
    - ``num_turns``: how many user turns the task has.
    - ``tools``: the tools initially offered, as OpenAI ``{"type": "function", "function":
      …}`` schemas (held-out miss_func tools are added to ``tools`` when revealed).
    - ``data_version``: the pinned ``bfcl-eval`` version the task comes from.
    - ``call_format``: the call format this episode uses (a variant may set its own).
    - ``ood``, ``ood_seed``: the variant's spec and seed (only when the task is a variant).

    At every ``step``:

    - ``task_id``: as above.
    - ``turn``: the index of the user turn this action belonged to.
    - ``parse``: the codec's reading of the action: ``{"status": "calls" | "partial" |
      "invalid" | "text", "calls": [...], "errors": [...], "outside_text": str}``.
    - ``structure``: the structural state of the message (``healthy_call``,
      ``healthy_response``, ``text_pollution`` or ``full_collapse``; see
      :mod:`toolenv.structure`).

    On a tool step, also:

    - ``step``: the number of tool steps so far in this turn (1, 2, …).
    - ``calls``: the decoded calls that ran, as ``{"name", "args", "kwargs"}`` dicts.
    - ``results``: their result texts, in order (the error results of undecodable blocks are
      in the observation only).

    On a reply, also:

    - ``turn_verdict``: the checker's verdict on the turn it closed: ``{"turn", "checked",
      "passed", "failure", "state_diff", "missing_results"}``.

    On the last step (terminated or truncated), also:

    - ``verdict``: the episode verdict: ``{"task_id", "passed", "failure", "failed_turn"
      (-1 when none), "turns"}``; the reward is 1.0 exactly when ``passed``.

    ## Attributes

    - ``tasks`` (``list[Task]``): the selected tasks (official or variants before ``ood``).
    - ``task`` (``Task | None``): the task being played (the variant when ``ood`` is set).
    - ``tools`` (``list[ToolSpec]``): the tools offered so far in this episode.
    - ``trajectory`` (``Trajectory | None``): the episode record: every message (assistant
      actions as given, dicts copied whole), per turn the steps with raw output, parse status,
      calls, results, errors and structure, the verdicts and the reward.
    - ``codec`` (``Codec``): the call format's codec in use for this episode.
    - ``call_format`` (``str``): the configured call format.
    - ``observation_mode``, ``max_steps_per_turn``, ``render_mode``, ``ood``, ``ood_seed``, ``keep_positional``:
      the constructor arguments.
    - ``action_space``, ``observation_space``: see above.
    - ``spec`` (``EnvSpec | None``): set by ``gym.make`` (the id and its kwargs).
    - ``metadata``: ``{"render_modes": ["human", "ansi"], "render_fps": 1}``.

    ## Example

    >>> import gymnasium as gym, toolenv
    >>> env = gym.make("BFCL-MultiTurn-v0", call_format="hermes")
    >>> obs, info = env.reset(options={"task_id": "multi_turn_base_0"})
    >>> obs, reward, terminated, truncated, info = env.step('<tool_call>{"name": "ls", "arguments": {}}</tool_call>')

    ## Version History

    - v0: initial release: the four scored BFCL-V3 multi-turn categories, five call formats,
      per-API ids, OOD variants (``ood``/``ood_seed``/``task_file``), message-dict actions in
      every call format, API short names in ``apis``.
    """

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
        keep_positional: bool = False,
        data_version: str | None = None,
    ) -> None:
        """See the class docstring, section Arguments."""
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"unknown observation_mode {observation_mode!r}; valid: {', '.join(OBSERVATION_MODES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: human, ansi")
        source = load_task_file(task_file) if task_file else (list(tasks) if tasks is not None else None)
        self.tasks: list[Task] = select_tasks(
            categories or CATEGORIES, split, apis, task_ids, tasks=source, data_version=data_version
        )
        self.keep_positional = bool(keep_positional)
        self.codec: Codec = get_codec(call_format, keep_positional=self.keep_positional)
        self._default_codec = self.codec
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
        info = {
            "task_id": task.id,
            "category": task.category,
            "turn": 0,
            "num_turns": len(task.turns),
            "tools": [tool.openai() for tool in self.tools],
            "data_version": task.data_version,
            "call_format": self.codec.name,
        }
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
        info: dict[str, Any] = {
            "task_id": self.task.id,
            "turn": self._turn,
            "parse": parsed.to_dict(),
            "structure": structure,
        }
        if parsed.attempted:
            results = [result.text for result in self._session.execute_all(parsed.calls)]
            error_results = [PARSE_ERROR_PREFIX + error for error in parsed.errors]
            turn_record.steps.append(
                Step(
                    _copied(action),
                    parsed.status,
                    list(parsed.calls),
                    results,
                    list(parsed.errors),
                    structure,
                    parsed.positional_dropped,
                    list(parsed.unrunnable),
                )
            )
            self._steps_in_turn += 1
            new = self._result_messages(
                list(parsed.calls) + [None] * len(error_results), results + error_results, parsed.call_ids
            )
            info.update(step=self._steps_in_turn, calls=[c.to_dict() for c in parsed.calls], results=results)
            if self._steps_in_turn > self.max_steps_per_turn:  # BFCL force-quit
                self.trajectory.truncated = True
                return self._finish(new, info, truncated=True)
            return self._observation(new), 0.0, False, False, info
        turn_record.steps.append(Step(_copied(action), parsed.status, [], [], list(parsed.errors), structure))
        verdict = self._checker.close_turn(turn_record.call_steps())
        turn_record.verdict = verdict.to_dict()
        info["turn_verdict"] = verdict.to_dict()
        self._turn += 1
        self._steps_in_turn = 0
        if self._turn >= len(self.task.turns):
            return self._finish([], info, truncated=False)
        return self._observation(self._open_turn()), 0.0, False, False, info

    def _finish(
        self, new: list[dict[str, Any]], info: dict[str, Any], truncated: bool
    ) -> tuple[Any, float, bool, bool, dict[str, Any]]:
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
            return self._default_codec
        return get_codec(
            options.get("call_format", self.call_format), PromptStyle.from_options(options), self.keep_positional
        )

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
        if isinstance(action, Mapping):
            # the message as the model sent it (ids, extra fields and all), with the two keys a
            # chat template needs filled in only when missing
            message = _copied(dict(action))
            message.setdefault("role", "assistant")
            message.setdefault("content", None)
            return message
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
