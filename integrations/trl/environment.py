"""``environment_factory`` classes for TRL's built-in tool loop, one class per BFCL task.

TRL 1.16 contract (``trl/trainer/grpo_trainer.py``, ``GRPOTrainer.__init__`` and
``_generate_and_score_completions``): ``environment_factory`` is a no-argument callable (here:
the class) or a dict of them routed by each row's ``environment`` field. TRL builds one
instance per rollout (pooled, reused across batches), lists the tools on the *class*
(``inspect.getmembers(type(instance), predicate=inspect.isfunction)``: every public function
but ``reset`` and ``get_reward``), renders them into the prompt with the chat template
(transformers' ``get_json_schema``: type hints and a Google-style docstring), calls
``observation = environment.reset(**row)`` before generating (a string is appended to the last
user message), runs each parsed tool call as ``method(**arguments)`` and appends its ``str``
result as a ``tool`` message, until the model answers without tool calls; then
``get_reward()`` scores the rollout.

Which tasks fit: TRL's loop ends the rollout at the model's first message without tool calls,
so it plays one user turn. Only BFCL tasks with a single user turn fit (six of the 800:
``multi_turn_base_46``, ``_50``, ``_198`` and their ``long_context`` twins; no miss_func or
miss_param task has one turn). Any other task is refused with a one-line ``ValueError``; play
those with :class:`integrations.trl.rollout.BFCLRollout` (``rollout_func``), which plays
scripted user turns 2..N and miss_func reveals.

The episode is ``BFCLEnv``'s: each instance's ``reset`` builds a fresh ``BFCLEnv`` (own
backends; nothing shared between rollouts), every tool method is one environment step with
one OpenAI-style tool call (the executor runs it, BFCL's exact result text comes back), and
``get_reward`` closes the turn with an empty reply (TRL does not pass the model's final text
to the environment; BFCL's checker scores the calls, never the reply) and returns the
checker's entry score. Differences from a text-format episode: calls are counted one step each
(TRL runs a message's calls one by one), so a message with k parallel calls uses k of BFCL's
20 steps per turn; past that limit BFCL force-quits, and further calls return an error text.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, Callable, Mapping

from integrations.trl.dataset import TASK_ID_KEY, resolve_tasks
from toolenv.data import Task
from toolenv.env import BFCLEnv
from toolenv.formats import ToolSpec, tool_specs

#: what TRL reserves on an environment class (never a tool)
RESERVED = frozenset({"reset", "get_reward"})
#: JSON-Schema scalar types → Python type hints (transformers maps them back the same way)
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict}


def fits_tool_loop(task: Task) -> bool:
    """Whether TRL's tool loop can play ``task``: one user turn, nothing revealed later."""
    return len(task.turns) == 1 and not task.held_out_names


def check_fits(task: Task) -> None:
    """A one-line ``ValueError`` for a task TRL's tool loop cannot play."""
    if not fits_tool_loop(task):
        raise ValueError(
            f"task {task.id} has {len(task.turns)} user turns; TRL's environment_factory loop plays one "
            "(the first reply without tool calls ends the rollout): use BFCLRollout (rollout_func) for it"
        )


# -- tool methods from schemas ---------------------------------------------------------------


def type_hint(schema: Mapping[str, Any]) -> Any:
    """The Python type hint of a JSON-Schema property (``array`` with ``items`` → ``list[...]``)."""
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return list[type_hint(items)] if isinstance(items, Mapping) and items.get("type") else list
    return _SCALARS.get(kind, Any) if isinstance(kind, str) else Any


def _one_line(text: Any) -> str:
    # transformers' docstring parser reads one "name: description" line per argument
    return re.sub(r"\s+", " ", str(text or "")).strip()


def docstring(function: Mapping[str, Any]) -> str:
    """A Google-style docstring from an OpenAI function schema: the description, one ``Args:``
    line per parameter (its default and enum choices included), and ``Returns:``."""
    lines = [_one_line(function.get("description")) or f"The {function['name']} tool.", ""]
    properties = function.get("parameters", {}).get("properties", {})
    if properties:
        lines.append("Args:")
        for name, schema in properties.items():
            text = _one_line(schema.get("description")) or f"The {name}."
            if "default" in schema:
                text += f" Default: {json.dumps(schema['default'])}."
            if "enum" in schema:  # transformers reads "(choices: [...])" at the end into "enum"
                text += f" (choices: {json.dumps(schema['enum'])})"
            lines.append(f"    {name}: {text}")
        lines.append("")
    lines += ["Returns:", "    The tool's result, as BFCL prints it."]
    return "\n".join(lines)


def signature(function: Mapping[str, Any]) -> inspect.Signature:
    """``(self, *, name: hint, ...) -> str``: keyword-only, so BFCL's parameter order is kept
    whatever is required; optional parameters default to their schema default (or None)."""
    parameters = function.get("parameters", {})
    required = set(parameters.get("required", []))
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name, schema in parameters.get("properties", {}).items():
        default = inspect.Parameter.empty if name in required else schema.get("default")
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=type_hint(schema))
        )
    return inspect.Signature(params, return_annotation=str)


def tool_method(spec: ToolSpec) -> Callable[..., str]:
    """The method TRL calls for one BFCL tool. It forwards exactly the arguments the model gave
    (no defaults filled in, unknown ones kept) so the backend sees what ``BFCLEnv`` would."""
    function = spec.openai()["function"]
    name = spec.name

    def method(self: "BFCLToolEnv", **arguments: Any) -> str:
        return self._call(name, arguments)

    sig = signature(function)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = docstring(function)
    method.__signature__ = sig  # type: ignore[attr-defined]
    method.__annotations__ = {p.name: p.annotation for p in list(sig.parameters.values())[1:]} | {"return": str}
    return method


# -- the environment ---------------------------------------------------------------------------


class BFCLToolEnv:
    """Base of the per-task classes :func:`bfcl_environment` builds (see the module docstring).
    Subclasses set ``task_id`` and ``env_kwargs`` and carry one method per tool."""

    task_id: str = ""
    env_kwargs: dict[str, Any] = {}

    def __init__(self) -> None:
        """No arguments (TRL's contract); the episode starts at :meth:`reset`."""
        # underscored: TRL takes every public function of the class for a tool, and a public
        # attribute could shadow a BFCL tool of the same name
        self._env: BFCLEnv | None = None
        self._reward: float | None = None
        self._info: dict[str, Any] = {}

    @property
    def episode(self) -> BFCLEnv | None:
        """The episode's ``BFCLEnv`` (its ``trajectory`` holds every step), None before ``reset``."""
        return self._env

    @property
    def info(self) -> dict[str, Any]:
        """The ``info`` of the last step (``verdict`` once the episode is over)."""
        return self._info

    def reset(self, **row: Any) -> str:
        """Start a fresh episode of this class's task (TRL calls it with the dataset row).

        Returns what TRL appends to the last user message: ``""`` when the row's prompt already
        holds the first user turn (:func:`integrations.trl.bfcl_dataset`'s rows), the first
        turn's text when that message is empty (TRL without a ``train_dataset``). A row naming
        another task is a one-line ``ValueError``."""
        named = row.get(TASK_ID_KEY)
        if named is not None and named != self.task_id:
            raise ValueError(f"{type(self).__name__} plays {self.task_id}, but the row is task {named!r}")
        self._env = BFCLEnv(
            task_ids=[self.task_id], call_format="openai", observation_mode="messages", **self.env_kwargs
        )
        observation, self._info = self._env.reset(options={"task_id": self.task_id})
        self._reward = None
        prompt = row.get("prompt")
        last = prompt[-1].get("content") if isinstance(prompt, list) and prompt else None
        if last:
            return ""
        return "\n\n".join(m["content"] for m in observation if m["role"] == "user")

    def get_reward(self) -> float:
        """The BFCL checker's entry score (1.0 or 0.0): closes the user turn with a reply first
        (unless BFCL's step limit already ended the episode). Idempotent."""
        if self._reward is None:
            env = self._live()
            _, reward, _, _, self._info = env.step({"role": "assistant", "content": ""})
            self._reward = float(reward)
        return self._reward

    def _live(self) -> BFCLEnv:
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before a tool or get_reward()")
        return self._env

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        """One environment step with one tool call; its result text (BFCL's exact text)."""
        env = self._live()
        if self._reward is not None:
            return "Error: the episode is over (BFCL's step limit for this turn was reached)."
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": name, "arguments": arguments}}],
        }
        observation, reward, terminated, truncated, self._info = env.step(message)
        if terminated or truncated:  # BFCL's force-quit: the episode is scored now
            self._reward = float(reward)
        return "\n".join(str(m.get("content", "")) for m in observation)


def _class_name(task_id: str) -> str:
    return "BFCLTask_" + re.sub(r"\W", "_", task_id)


def bfcl_environment(task_id: str, **env_kwargs: Any) -> type[BFCLToolEnv]:
    """The ``environment_factory`` class of one single-turn BFCL task: a :class:`BFCLToolEnv`
    subclass with one typed, documented method per tool the task offers. ``env_kwargs`` go to
    its ``BFCLEnv`` (``data_version``, ``max_steps_per_turn``, ...). One-line ``ValueError``
    for an unknown task, a task that does not fit TRL's loop, or a tool name TRL reserves."""
    (task,) = resolve_tasks([task_id], env_kwargs.get("data_version"), where="for bfcl_environment")
    check_fits(task)
    methods: dict[str, Any] = {}
    for spec in tool_specs(task.tool_docs()):
        if spec.name in RESERVED or spec.name.startswith("_") or hasattr(BFCLToolEnv, spec.name):
            raise ValueError(f"task {task_id}: tool {spec.name!r} clashes with a name TRL's environment reserves")
        methods[spec.name] = tool_method(spec)
    namespace = {
        "task_id": task.id,
        "env_kwargs": dict(env_kwargs),
        "__doc__": f"BFCL task {task.id} for TRL.",
        **methods,
    }
    return type(_class_name(task.id), (BFCLToolEnv,), namespace)


def bfcl_environments(task_ids: Any, **env_kwargs: Any) -> dict[str, type[BFCLToolEnv]]:
    """A dict ``environment_factory`` (``{task_id: class}``) for TRL, routed by the
    ``environment`` column of :func:`integrations.trl.bfcl_dataset`. ``task_ids``: ids, or a
    dataset with a ``task_id`` column. Every task must fit (one-line error otherwise)."""
    if hasattr(task_ids, "column_names"):
        task_ids = task_ids[TASK_ID_KEY]
    return {task_id: bfcl_environment(task_id, **env_kwargs) for task_id in dict.fromkeys(task_ids)}
