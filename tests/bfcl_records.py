"""Model-like BFCL multi-turn result records, and the official pipeline's verdict on them.

Tests only. :func:`generate` builds, seeded and deterministic, records in the official result
format (``{"id", "result": list[turn][step]}``) from each task's ground truth: verbatim, then
mutated the ways real models go wrong (chatter, undecodable and empty steps, split and merged
steps, altered/dropped/duplicated/moved calls, missing and extra turns, inference errors) and
written the ways real models write (positional arguments, fences, text around the list, names
and expressions where literals belong, nested calls). Every record comes in one of two formats:

* ``prompting``: each step a string in BFCL's python-list call format;
* ``fc``: each step a list of ``{function_name: arguments}`` dicts (arguments a dict or a JSON
  string), or a string where a function-calling model answered in text.

:func:`official_verdict` scores one record exactly as ``bfcl evaluate`` does for multi-turn
entries (``eval_runner._evaluate_single_multi_turn_entry``): a ``result`` that is not a list is
an inference error, a turn count other than the ground truth's is force-terminated, otherwise
every step is decoded with the official decoder (prompting: ``default_decode_execute_prompting``;
FC: ``convert_to_function_call``), steps whose decoding raises or is empty are skipped, and the
decoded turns go to ``multi_turn_checker``. :func:`toolenv_verdict` scores it with toolenv
(``trajectory_from_bfcl`` then ``score_trajectory``).

    from tests.bfcl_records import generate, official_verdict, toolenv_verdict
    for item in generate(tasks=["multi_turn_base_3"], per_task=None):
        print(item.kind, item.fmt, official_verdict(item.record, item.fc), toolenv_verdict(item.record))
"""

from __future__ import annotations

import inspect
import itertools
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Sequence

from envs import backend_class, tool_owner
from toolenv.calls import Call
from toolenv.data import Task, get_task, load_tasks, raw_entries
from toolenv.executor import keyword_call

PROMPTING, FC = "prompting", "fc"
FORMATS = (PROMPTING, FC)

CHATTER = (
    "I will now list the files.",
    "Sure! Let me take care of that for you.",
    "I have completed the requested operation.",
    "Could you please clarify which file you mean?",
    "I'm sorry, but I cannot do that with the functions available.",
    "Done. Is there anything else I can help you with?",
    "The result is ready: 3 files were found (see above).",
    "Let's proceed step by step: first, I'll check the current state.",
)
UNDECODABLE_PROMPTING = (
    "[cd(folder='x'",
    "cd(folder=)",
    "[ls(a=True)",
    "[mkdir(dir_name='new')]]",
    "cd folder=documents",
    "[{'name': 'ls', 'arguments': {}}]",
    '<tool_call>{"name": "ls", "arguments": {}}</tool_call>',
    "[ls(a=True), ]]",
    "[pwd() pwd()]",
    "[ls(a=True); pwd()]",
    "[lambda: ls()]",
    "[ls()][0]",
    "[ls()] + [pwd()]",
    "[ls() for _ in range(2)]",
    "[cd(folder='a')], [ls()]",
    "[cd(folder='a', folder='b')]",
    "[cd(folder='a') ls()]",
)
EMPTY_PROMPTING = ("[]", "", "   ", "\n", "``````", "[ ]", None)
INFERENCE_ERRORS = (
    "Error during inference: Connection timed out",
    "Error during inference: 'NoneType' object is not subscriptable",
    "litellm.BadRequestError: This model's maximum context length is 128000 tokens.",
    "Error code: 429 - Rate limit reached",
    "",
    None,
    {"error": "server error"},
)


@dataclass(frozen=True)
class Src:
    """A call written as literal source text (prompting only): a form that no :class:`Call`
    renders to (names, expressions, nested calls, the task's own ground-truth text)."""

    text: str

    def to_python(self) -> str:
        return self.text


@dataclass(frozen=True)
class Raw:
    """A step (or a whole turn, or the whole result) given exactly as stored in the record."""

    value: Any


Item = Call | Src
Step = list[Item] | Raw
Plan = list[list[Step] | Raw]


@dataclass(frozen=True)
class GeneratedRecord:
    kind: str
    fmt: str
    record: dict[str, Any]
    detail: str = ""

    @property
    def fc(self) -> bool:
        return self.fmt == FC


# -- building blocks -----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def keyword_turns(task_id: str) -> tuple[tuple[Call, ...], ...]:
    """The task's ground truth with every positional argument bound to its parameter name."""
    task = get_task(task_id)
    return tuple(tuple(keyword_call(c, task.involved_classes) for c in turn) for turn in task.ground_truth_calls)


@lru_cache(maxsize=None)
def _parameters(tool: str, classes: tuple[str, ...]) -> tuple[str, ...]:
    """A tool's parameters that may be passed by position, in order (self left out)."""
    owner = tool_owner(tool, classes)
    if owner is None:
        return ()
    parameters = list(inspect.signature(getattr(backend_class(owner), tool)).parameters.values())[1:]
    ok = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in itertools.takewhile(lambda p: p.kind in ok, parameters))


def positional_form(call: Call, classes: Sequence[str]) -> Call | None:
    """``cd(folder='docs')`` → ``cd('docs')``: the leading arguments passed by position, as
    far as the signature allows (None when not even the first can be)."""
    args, kwargs = [], dict(call.kwargs)
    for name in _parameters(call.name, tuple(classes)):
        if name not in kwargs:
            break
        args.append(kwargs.pop(name))
    return Call(call.name, tuple(args), kwargs) if args else None


def render_prompting(items: Sequence[Item]) -> str:
    return "[" + ", ".join(item.to_python() for item in items) + "]"


def render_fc(items: Sequence[Item], json_args: bool | Callable[[int], bool] = False) -> list[dict[str, Any]]:
    out = []
    for index, call in enumerate(items):
        assert isinstance(call, Call) and not call.args, call
        as_json = json_args(index) if callable(json_args) else json_args
        out.append({call.name: json.dumps(dict(call.kwargs)) if as_json else dict(call.kwargs)})
    return out


def render(plan: Plan | Raw, fmt: str) -> Any:
    if isinstance(plan, Raw):
        return plan.value
    result = []
    for turn in plan:
        if isinstance(turn, Raw):
            result.append(turn.value)
            continue
        steps = []
        for step in turn:
            if isinstance(step, Raw):
                steps.append(step.value)
            else:
                steps.append(render_prompting(step) if fmt == PROMPTING else render_fc(step))
        result.append(steps)
    return result


def base_plan(task: Task, rng: random.Random) -> Plan:
    """One step per turn holding the turn's ground-truth calls; a chatter reply for a turn whose
    ground truth is empty (the model says it cannot)."""
    return [[list(calls)] if calls else [Raw(rng.choice(CHATTER))] for calls in keyword_turns(task.id)]


def _copy(plan: Plan) -> Plan:
    return [turn if isinstance(turn, Raw) else [s if isinstance(s, Raw) else list(s) for s in turn] for turn in plan]


def _slots(plan: Plan) -> list[tuple[int, int, int]]:
    """``(turn, step, item)`` of every call in the plan."""
    return [
        (t, s, i)
        for t, turn in enumerate(plan)
        if not isinstance(turn, Raw)
        for s, step in enumerate(turn)
        if not isinstance(step, Raw)
        for i, item in enumerate(step)
        if isinstance(item, Call)
    ]


def _call_turns(plan: Plan) -> list[int]:
    return sorted({t for t, _, _ in _slots(plan)})


def _value_slots(plan: Plan, wanted: Callable[[Any], bool]) -> list[tuple[int, int, int, str]]:
    return [
        (t, s, i, key)
        for t, s, i in _slots(plan)
        for key, value in plan[t][s][i].kwargs.items()  # type: ignore[index, union-attr]
        if wanted(value)
    ]


def _replace_value(plan: Plan, slot: tuple[int, int, int, str], source: str) -> str:
    """Write argument ``slot`` of its call as ``source`` (the call becomes a :class:`Src`)."""
    t, s, i, key = slot
    call = plan[t][s][i]  # type: ignore[index]
    parts = [repr(v) for v in call.args] + [f"{k}={source if k == key else repr(v)}" for k, v in call.kwargs.items()]
    text = f"{call.name}({', '.join(parts)})"
    plan[t][s][i] = Src(text)  # type: ignore[index]
    return f"turn {t}: {call.to_python()} -> {text}"


def _alter(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([1, -1, 10])
    if isinstance(value, float):
        return value + rng.choice([1.5, -0.25, 100.0])
    if isinstance(value, str):
        return rng.choice([value + "_x", value.upper() if value.upper() != value else value + "X", ""])
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "extra": 1}
    return "x"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the kinds of record -------------------------------------------------------------------------
# Each takes (task, plan, rng, fmt) with plan a fresh copy of the base plan, and returns
# (plan or whole-result Raw, detail), or None when it does not apply to the task.

Variant = tuple[Plan | Raw, str] | None
KindFn = Callable[[Task, Plan, random.Random, str], Variant]


def k_verbatim(task, plan, rng, fmt) -> Variant:
    return plan, "ground truth, keyword form"


def k_verbatim_task_text(task, plan, rng, fmt) -> Variant:
    """The ground truth exactly as the task writes it (positional forms included)."""
    out: Plan = [[[Src(text) for text in turn]] if turn else plan[t] for t, turn in enumerate(task.ground_truth)]
    return out, "the task's own ground-truth strings"


def _positional(task, plan, rng, fmt, every: bool) -> Variant:
    candidates = [(t, s, i) for t, s, i in _slots(plan) if positional_form(plan[t][s][i], task.involved_classes)]
    if not candidates:
        return None
    chosen = candidates if every else [rng.choice(candidates)]
    details = []
    for t, s, i in chosen:
        form = positional_form(plan[t][s][i], task.involved_classes)
        plan[t][s][i] = form
        details.append(f"turn {t}: {form.to_python()}")
    return plan, "; ".join(details[:3]) + (" ..." if len(details) > 3 else "")


def k_positional_one(task, plan, rng, fmt) -> Variant:
    return _positional(task, plan, rng, fmt, every=False)


def k_positional_all(task, plan, rng, fmt) -> Variant:
    return _positional(task, plan, rng, fmt, every=True)


def k_chatter_steps(task, plan, rng, fmt) -> Variant:
    turns = _call_turns(plan)
    picked = rng.sample(turns, k=max(1, len(turns) // 2))
    for t in picked:
        where = rng.choice(["before", "after", "both"])
        if where in ("before", "both"):
            plan[t].insert(0, Raw(rng.choice(CHATTER)))
        if where in ("after", "both"):
            plan[t].append(Raw(rng.choice(CHATTER)))
    return plan, f"chatter steps added in turns {sorted(picked)}"


def k_chatter_turn(task, plan, rng, fmt) -> Variant:
    t = rng.choice(_call_turns(plan))
    plan[t] = [Raw(rng.choice(CHATTER))]
    return plan, f"turn {t} answered in text only"


def _garbage(fmt: str, rng: random.Random) -> Any:
    if fmt == PROMPTING:
        return rng.choice(UNDECODABLE_PROMPTING)
    return rng.choice(
        [
            rng.choice(UNDECODABLE_PROMPTING),  # an FC model's text reply
            [{"ls": "{'a': True}"}],  # python repr, not JSON
            [{"ls": '{"a": tru'}],
            ["ls"],
            [["ls", {}]],
            [{"ls": "[]"}],
            [{"ls": 3}],
            [{"ls": None}],
            None,
        ]
    )


def k_undecodable_steps(task, plan, rng, fmt) -> Variant:
    turns = _call_turns(plan)
    picked = rng.sample(turns, k=max(1, len(turns) // 2))
    shown = []
    for t in picked:
        junk = _garbage(fmt, rng)
        shown.append(junk)
        plan[t].insert(rng.choice([0, len(plan[t])]), Raw(junk))
    return plan, f"undecodable steps in turns {sorted(picked)}: {_short(shown)}"


def k_undecodable_turn(task, plan, rng, fmt) -> Variant:
    """A turn's call step cut short (it may still decode: '[f(a=1),' gains its ']')."""
    t = rng.choice(_call_turns(plan))
    s = next(s for s, step in enumerate(plan[t]) if not isinstance(step, Raw))
    if fmt == PROMPTING:
        text = render_prompting(plan[t][s])
        boundaries = [i + 2 for i in range(len(text)) if text.startswith("),", i)]
        if boundaries and rng.random() < 0.3:  # right after a call: the rest still decodes
            cut = rng.choice(boundaries)
        else:
            cut = rng.randrange(1, len(text) - 1)
        plan[t][s] = Raw(text[:cut])
        return plan, f"turn {t}: {_short(text[:cut])}"
    steps = render_fc(plan[t][s], json_args=True)
    i = rng.randrange(len(steps))
    ((name, args),) = steps[i].items()
    steps[i] = {name: args[: rng.randrange(0, len(args))]}
    plan[t][s] = Raw(steps)
    return plan, f"turn {t}: {_short(steps)}"


def k_empty_steps(task, plan, rng, fmt) -> Variant:
    turns = _call_turns(plan)
    picked = rng.sample(turns, k=max(1, len(turns) // 2))
    for t in picked:
        empty = rng.choice(EMPTY_PROMPTING) if fmt == PROMPTING else rng.choice([[], [], "", None])
        plan[t].insert(rng.choice([0, len(plan[t])]), Raw(empty))
    return plan, f"empty steps added in turns {sorted(picked)}"


def k_empty_turn(task, plan, rng, fmt) -> Variant:
    t = rng.choice(_call_turns(plan))
    choice = rng.choice(["no steps", "empty step", "empty steps"])
    empty = (lambda: rng.choice(EMPTY_PROMPTING)) if fmt == PROMPTING else (lambda: rng.choice([[], ""]))
    plan[t] = [] if choice == "no steps" else [Raw(empty())] if choice == "empty step" else [Raw(empty()), Raw(empty())]
    return plan, f"turn {t}: {choice}"


def k_split_steps(task, plan, rng, fmt) -> Variant:
    for t in _call_turns(plan):
        plan[t] = [[item] for step in plan[t] if not isinstance(step, Raw) for item in step]
    return plan, "one call per step"


def k_split_partial(task, plan, rng, fmt) -> Variant:
    multi = [t for t in _call_turns(plan) if len(plan[t][0]) > 1]
    if not multi:
        return None
    t = rng.choice(multi)
    cut = rng.randrange(1, len(plan[t][0]))
    plan[t] = [plan[t][0][:cut], plan[t][0][cut:]]
    return plan, f"turn {t} split after call {cut}"


def k_merge_turns(task, plan, rng, fmt) -> Variant:
    """All calls of turn t+1 made already in turn t; turn t+1 answered in text."""
    pairs = [t for t in _call_turns(plan) if t + 1 < len(plan) and (t + 1) in _call_turns(plan)]
    if not pairs:
        return None
    t = rng.choice(pairs)
    plan[t] = [plan[t][0] + plan[t + 1][0]]
    plan[t + 1] = [Raw(rng.choice(CHATTER))]
    return plan, f"turn {t + 1}'s calls merged into turn {t}"


def k_alter_value(task, plan, rng, fmt) -> Variant:
    slots = _value_slots(plan, lambda v: True)
    if not slots:
        return None
    t, s, i, key = rng.choice(slots)
    call = plan[t][s][i]
    new = Call(call.name, (), {**call.kwargs, key: _alter(call.kwargs[key], rng)})
    plan[t][s][i] = new
    return plan, f"turn {t}: {call.to_python()} -> {new.to_python()}"


def k_drop_arg(task, plan, rng, fmt) -> Variant:
    slots = _value_slots(plan, lambda v: True)
    if not slots:
        return None
    t, s, i, key = rng.choice(slots)
    call = plan[t][s][i]
    plan[t][s][i] = Call(call.name, (), {k: v for k, v in call.kwargs.items() if k != key})
    return plan, f"turn {t}: {call.to_python()} without {key}"


def k_extra_arg(task, plan, rng, fmt) -> Variant:
    t, s, i = rng.choice(_slots(plan))
    call = plan[t][s][i]
    plan[t][s][i] = Call(call.name, (), {**call.kwargs, "verbose": True})
    return plan, f"turn {t}: {call.name}(..., verbose=True)"


def k_alter_function(task, plan, rng, fmt) -> Variant:
    t, s, i = rng.choice(_slots(plan))
    call = plan[t][s][i]
    names = sorted({c.name for turn in keyword_turns(task.id) for c in turn} - {call.name})
    name = rng.choice(names) if names and rng.random() < 0.5 else call.name + "_v2"
    plan[t][s][i] = Call(name, (), dict(call.kwargs))
    return plan, f"turn {t}: {call.name} -> {name}"


def k_drop_call(task, plan, rng, fmt) -> Variant:
    t, s, i = rng.choice(_slots(plan))
    dropped = plan[t][s].pop(i)
    return plan, f"turn {t}: dropped {dropped.to_python()}"


def k_duplicate_call(task, plan, rng, fmt) -> Variant:
    t, s, i = rng.choice(_slots(plan))
    plan[t][s].insert(i, plan[t][s][i])
    return plan, f"turn {t}: {plan[t][s][i].to_python()} twice"


def k_move_call(task, plan, rng, fmt) -> Variant:
    if len(plan) < 2:
        return None
    t, s, i = rng.choice(_slots(plan))
    target = t + rng.choice([-1, 1]) if 0 < t < len(plan) - 1 else (1 if t == 0 else t - 1)
    call = plan[t][s].pop(i)
    calls = [step for step in plan[target] if not isinstance(step, Raw)]
    if calls:
        calls[0].insert(0 if target > t else len(calls[0]), call)
    else:
        plan[target] = [[call]]
    return plan, f"{call.to_python()} moved from turn {t} to turn {target}"


def k_reorder_calls(task, plan, rng, fmt) -> Variant:
    multi = [t for t in _call_turns(plan) if len(plan[t][0]) > 1]
    if not multi:
        return None
    t = rng.choice(multi)
    plan[t][0] = list(reversed(plan[t][0]))
    return plan, f"turn {t} calls reversed"


def k_missing_turn(task, plan, rng, fmt) -> Variant:
    t = rng.randrange(len(plan))
    del plan[t]
    return plan, f"turn {t} missing"


def k_extra_turn(task, plan, rng, fmt) -> Variant:
    t = rng.randrange(len(plan))
    extra = _copy([plan[t]])[0]
    if rng.random() < 0.5:
        plan.append(extra)
        return plan, f"turn {t} repeated at the end"
    plan.insert(t, extra)
    return plan, f"turn {t} doubled"


def k_empty_result(task, plan, rng, fmt) -> Variant:
    return Raw([]), "result []"


def k_inference_error(task, plan, rng, fmt) -> Variant:
    error = rng.choice(INFERENCE_ERRORS)
    return Raw(error), f"result {error!r}"


# prompting only: text forms


def _text_step(plan: Plan, rng: random.Random) -> tuple[int, int, str]:
    t = rng.choice(_call_turns(plan))
    s = next(s for s, step in enumerate(plan[t]) if not isinstance(step, Raw))
    return t, s, render_prompting(plan[t][s])


def k_text_and_calls(task, plan, rng, fmt) -> Variant:
    t, s, text = _text_step(plan, rng)
    form = rng.choice(
        [
            "Sure, I'll do that. {}",
            "{} Done.",
            "Sure!\n{}",
            "{}\nThese calls complete the request.",
            "I will call: {}",
            "Thought: I need the tools.\nAction: {}",
        ]
    )
    plan[t][s] = Raw(form.format(text))
    return plan, f"turn {t}: {_short(form.format(text))}"


WRAPPERS = {
    "fence": "```\n{}\n```",
    "fence_inline": "```{}```",
    "fence_python": "```python\n{}\n```",
    "newlines": "\n\n{}\n",
    "spaces": "   {}  ",
    "tab": "\t{}",
    "crlf": "{}\r\n",
    "single_quotes": "'{}'",
    "double_quotes": '"{}"',
    "backtick_quotes": "`{}`",
    "toolcall_tag": "<TOOLCALL>{}</TOOLCALL>",
    "parens": "({})",
    "two_lists": "{0}\n{0}",
}


def k_wrapping(task, plan, rng, fmt) -> Variant:
    t, s, text = _text_step(plan, rng)
    name = rng.choice(sorted(WRAPPERS) + ["no_brackets", "inner_spaces", "multiline", "no_brackets_all"])
    calls = plan[t][s]
    if name == "no_brackets":
        out = text[1:-1]
    elif name == "no_brackets_all":
        for turn in _call_turns(plan):
            for index, step in enumerate(plan[turn]):
                if not isinstance(step, Raw):
                    plan[turn][index] = Raw(render_prompting(step)[1:-1])
        return plan, "every step without its brackets"
    elif name == "inner_spaces":
        out = "[ " + " , ".join(c.to_python() for c in calls) + " ]"
    elif name == "multiline":
        out = "[\n    " + ",\n    ".join(c.to_python() for c in calls) + "\n]"
    else:
        out = WRAPPERS[name].format(text)
    plan[t][s] = Raw(out)
    return plan, f"{name}, turn {t}: {_short(out)}"


def _literal_source(value: Any, rng: random.Random) -> str:
    """Another way to write the same literal (double quotes, hex, underscores, tuples-free)."""
    if isinstance(value, str) and value.isascii() and '"' not in value and "\\" not in value and value.isprintable():
        return '"' + value + '"'
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return rng.choice([hex(value) if value >= 0 else repr(value), f"{value:_}", f"{value} "])
    if isinstance(value, float):
        return rng.choice([repr(value), f"{value!r}".replace("e+", "E+")])
    if isinstance(value, list):
        return "[" + ", ".join(_literal_source(v, rng) for v in value) + ("," if value else "") + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal_source(k, rng)}: {_literal_source(v, rng)}" for k, v in value.items()) + "}"
    return repr(value)


def k_literal_forms(task, plan, rng, fmt) -> Variant:
    """Same values, other spellings: double quotes, hex ints, '=' with spaces, trailing commas."""
    t, s, _ = _text_step(plan, rng)
    parts = []
    for call in plan[t][s]:
        args = [
            f"{k} = {_literal_source(v, rng)}" if rng.random() < 0.5 else f"{k}={_literal_source(v, rng)}"
            for k, v in call.kwargs.items()
        ]
        parts.append(f"{call.name}({', '.join(args)}{',' if args and rng.random() < 0.3 else ''})")
    plan[t][s] = [Src(p) for p in parts]
    return plan, f"turn {t}: {_short(render_prompting(plan[t][s]))}"


def _value_kind(wanted: Callable[[Any], bool], source: Callable[[Any, random.Random], str]) -> KindFn:
    def kind(task, plan, rng, fmt) -> Variant:
        slots = _value_slots(plan, wanted)
        if not slots:
            return None
        slot = rng.choice(slots)
        t, s, i, key = slot
        return plan, _replace_value(plan, slot, source(plan[t][s][i].kwargs[key], rng))

    return kind


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _hashable_list(v: Any) -> bool:
    return (
        isinstance(v, list) and bool(v) and all(isinstance(x, (str, int, float)) for x in v) and len(set(v)) == len(v)
    )


def _arithmetic(v: Any, rng: random.Random) -> str:
    """An expression on literals that evaluates to ``v`` (``/`` gives a float for an int)."""
    if isinstance(v, str):
        cut = rng.randrange(len(v) + 1)
        return rng.choice([f"{v[:cut]!r} + {v[cut:]!r}", f"{v!r} * 1"])
    if isinstance(v, list):
        cut = rng.randrange(len(v) + 1)
        return f"{v[:cut]!r} + {v[cut:]!r}"
    if isinstance(v, int):
        return rng.choice([f"{v - 1} + 1", f"{v + 2} - 2", f"{v} * 1", f"{v * 2} // 2", f"{v * 2} / 2", f"({v}) ** 1"])
    return rng.choice([f"{v!r} * 1", f"{v!r} + 0"])


k_name_value = _value_kind(
    lambda v: isinstance(v, str) and v.isidentifier() and v not in ("True", "False", "None"), lambda v, r: v
)
k_arithmetic = _value_kind(lambda v: isinstance(v, (str, list)) or _is_number(v), _arithmetic)
k_unary_plus = _value_kind(lambda v: _is_number(v) and v >= 0, lambda v, r: f"+{v!r}")
k_double_negative = _value_kind(_is_number, lambda v, r: f"-(-{v!r})" if v >= 0 else f"-({-v!r})")
k_unary_not = _value_kind(lambda v: isinstance(v, bool), lambda v, r: f"not {not v}")
k_set_value = _value_kind(_hashable_list, lambda v, r: "{" + ", ".join(map(repr, v)) + "}")
k_ellipsis_value = _value_kind(lambda v: isinstance(v, str), lambda v, r: "...")
k_subscript_value = _value_kind(lambda v: isinstance(v, str), lambda v, r: f"[{v!r}][0]")


def _dict_form(v: dict, rng: random.Random) -> str:
    forms = [
        "dict(" + ", ".join(f"{k}={x!r}" for k, x in v.items()) + ")",  # a call with keywords
        "{" + ", ".join(f"{json.dumps(k)}: {x!r}" for k, x in v.items()) + "}",  # double-quoted keys
        "{" + ", ".join(f"{k!r}: {{}}" for k in v) + "}",  # every value a dict: read as a call
        "{" + ", ".join(f"{i}: {x!r}" for i, x in enumerate(v.values())) + "}",  # int keys
        "{" + ", ".join(f"{k!r}: {{'value': {x!r}}}" for k, x in v.items()) + "}",
    ]
    return rng.choice(forms)


k_dict_value_forms = _value_kind(
    lambda v: isinstance(v, dict) and bool(v) and all(isinstance(k, str) and k.isidentifier() for k in v),
    _dict_form,
)


def _other_expression(v: Any, rng: random.Random) -> str:
    return rng.choice(
        [
            f"f{v!r}" if isinstance(v, str) else f"int({v!r})",
            f"{v!r} if True else None",
            f"({v!r} == {v!r})",
            f"(lambda: {v!r})()",
            f"{{x for x in [{v!r}]}}",
            f"os.{v}" if isinstance(v, str) and v.isidentifier() else "os.sep",
            f"[{v!r}][-1]",
            f"*[{v!r}]",
        ]
    )


k_other_expression = _value_kind(lambda v: True, _other_expression)
k_nested_call_nokw = _value_kind(lambda v: isinstance(v, str), lambda v, r: f"str({v!r})")


def k_nested_call_kw(task, plan, rng, fmt) -> Variant:
    """A value replaced by another ground-truth call of the task (with keywords)."""
    slots = _value_slots(plan, lambda v: True)
    inner = [c for turn in keyword_turns(task.id) for c in turn if c.kwargs]
    if not slots or not inner:
        return None
    return plan, _replace_value(plan, rng.choice(slots), rng.choice(inner).to_python())


def k_empty_dict_value(task, plan, rng, fmt) -> Variant:
    dicts = _value_slots(plan, lambda v: isinstance(v, dict))
    if dicts:
        return plan, _replace_value(plan, rng.choice(dicts), "{}")
    t, s, i = rng.choice(_slots(plan))
    call = plan[t][s][i]
    text = call.to_python()[:-1] + (", " if call.kwargs else "") + "options={})"
    plan[t][s][i] = Src(text)
    return plan, f"turn {t}: {text}"


def k_attribute_callee(task, plan, rng, fmt) -> Variant:
    t, s, i = rng.choice(_slots(plan))
    call = plan[t][s][i]
    owner = tool_owner(call.name, task.involved_classes) or "functions"
    text = f"{rng.choice([owner, 'functions'])}.{call.to_python()}"
    plan[t][s][i] = Src(text)
    return plan, f"turn {t}: {text}"


def k_star_kwargs(task, plan, rng, fmt) -> Variant:
    slots = [(t, s, i) for t, s, i in _slots(plan) if plan[t][s][i].kwargs]
    if not slots:
        return None
    t, s, i = rng.choice(slots)
    call = plan[t][s][i]
    text = f"{call.name}(**{dict(call.kwargs)!r})"
    plan[t][s][i] = Src(text)
    return plan, f"turn {t}: {text}"


def k_bare_string_turn(task, plan, rng, fmt) -> Variant:
    """A turn stored as one string instead of a list of steps."""
    t = rng.choice(_call_turns(plan))
    s = next(s for s, step in enumerate(plan[t]) if not isinstance(step, Raw))
    plan[t] = Raw(render_prompting(plan[t][s]))
    return plan, f"turn {t} is the string {_short(plan[t].value)}"


# FC only


def _fc_step(plan: Plan, rng: random.Random) -> tuple[int, int]:
    t = rng.choice(_call_turns(plan))
    return t, next(s for s, step in enumerate(plan[t]) if not isinstance(step, Raw))


def k_fc_json_args(task, plan, rng, fmt) -> Variant:
    for t in _call_turns(plan):
        plan[t] = [s if isinstance(s, Raw) else Raw(render_fc(s, json_args=True)) for s in plan[t]]
    return plan, "every arguments object as a JSON string"


def k_fc_mixed_args(task, plan, rng, fmt) -> Variant:
    for t in _call_turns(plan):
        plan[t] = [
            s if isinstance(s, Raw) else Raw(render_fc(s, json_args=lambda i: rng.random() < 0.5)) for s in plan[t]
        ]
    return plan, "arguments as dicts and JSON strings, mixed"


def k_fc_bad_json(task, plan, rng, fmt) -> Variant:
    t, s = _fc_step(plan, rng)
    items = render_fc(plan[t][s])
    i = rng.randrange(len(items))
    ((name, args),) = items[i].items()
    items[i] = {name: rng.choice([repr(args), json.dumps(args)[:-1], json.dumps(args) + "}", "{" + json.dumps(args)])}
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_non_object_json(task, plan, rng, fmt) -> Variant:
    t, s = _fc_step(plan, rng)
    items = render_fc(plan[t][s])
    i = rng.randrange(len(items))
    ((name, args),) = items[i].items()
    items[i] = {
        name: rng.choice([json.dumps(list(args.values())), "null", '"text"', "42", list(args.values()), None, 7])
    }
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_multi_key(task, plan, rng, fmt) -> Variant:
    """Two calls with distinct names in one ``{name: args, name2: args2}`` dict."""
    candidates = [
        (t, s, i)
        for t, s, i in _slots(plan)
        if i + 1 < len(plan[t][s]) and plan[t][s][i].name != plan[t][s][i + 1].name
    ]
    if not candidates:
        return None
    t, s, i = rng.choice(candidates)
    items = render_fc(plan[t][s], json_args=rng.random() < 0.5)
    items[i : i + 2] = [{**items[i], **items[i + 1]}]
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_empty_item(task, plan, rng, fmt) -> Variant:
    t, s = _fc_step(plan, rng)
    items = render_fc(plan[t][s])
    items.insert(rng.randrange(len(items) + 1), {})
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_bare_dict(task, plan, rng, fmt) -> Variant:
    """A one-call step stored as the call's dict, not a list of them."""
    t, s = _fc_step(plan, rng)
    steps = [Raw(render_fc([c], json_args=rng.random() < 0.5)[0]) for c in plan[t][s]]
    plan[t][s : s + 1] = steps
    return plan, f"turn {t}: {_short([x.value for x in steps])}"


def k_fc_text_call(task, plan, rng, fmt) -> Variant:
    """The calls written as python-list text in a function-calling record."""
    t, s = _fc_step(plan, rng)
    plan[t][s] = Raw(render_prompting(plan[t][s]))
    return plan, f"turn {t}: {_short(plan[t][s].value)}"


def k_fc_non_dict_item(task, plan, rng, fmt) -> Variant:
    t, s = _fc_step(plan, rng)
    items: list[Any] = render_fc(plan[t][s])
    i = rng.randrange(len(items))
    items[i] = rng.choice([next(iter(items[i])), [next(iter(items[i])), next(iter(items[i].values()))]])
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_odd_names(task, plan, rng, fmt) -> Variant:
    """A function name with a namespace, stray spaces or another case."""
    t, s = _fc_step(plan, rng)
    items = render_fc(plan[t][s])
    i = rng.randrange(len(items))
    ((name, args),) = items[i].items()
    odd = rng.choice([f"functions.{name}", f"{name} ", f" {name}", name.upper(), f"{name}()", ""])
    items[i] = {odd: args}
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_odd_keys(task, plan, rng, fmt) -> Variant:
    """An argument key that is no identifier (or a keyword) added to, or replacing, one."""
    t, s = _fc_step(plan, rng)
    items = render_fc(plan[t][s])
    i = rng.randrange(len(items))
    ((name, args),) = items[i].items()
    odd = rng.choice(["file name", "class", "1st", "", "x-y"])
    if args and rng.random() < 0.5:
        key = rng.choice(sorted(args))
        args = {odd if k == key else k: v for k, v in args.items()}
    else:
        args = {**args, odd: True}
    items[i] = {name: json.dumps(args) if rng.random() < 0.5 else args}
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items)}"


def k_fc_special_values(task, plan, rng, fmt) -> Variant:
    """JSON-string arguments holding values with no Python literal (Infinity, NaN) or odd strings."""
    slots = _value_slots(plan, lambda v: _is_number(v) or isinstance(v, str))
    if not slots:
        return None
    t, s, i, key = rng.choice(slots)
    value = plan[t][s][i].kwargs[key]
    if _is_number(value):
        text = rng.choice(["Infinity", "-Infinity", "NaN", "1e400", "1E2", "0.0", str(value) + ".0", "-0"])
    else:
        text = json.dumps(rng.choice([value + "\n", "\u00e9" + value, value + '"', "", value + "'"]))
    items = render_fc(plan[t][s])
    args = json.dumps({k: (v if k != key else None) for k, v in items[i][plan[t][s][i].name].items()})
    items[i] = {plan[t][s][i].name: args.replace(f'"{key}": null', f'"{key}": {text}')}
    plan[t][s] = Raw(items)
    return plan, f"turn {t}: {_short(items[i])}"


COMMON_KINDS: dict[str, KindFn] = {
    "verbatim": k_verbatim,
    "chatter_steps": k_chatter_steps,
    "chatter_turn": k_chatter_turn,
    "undecodable_steps": k_undecodable_steps,
    "undecodable_turn": k_undecodable_turn,
    "empty_steps": k_empty_steps,
    "empty_turn": k_empty_turn,
    "split_steps": k_split_steps,
    "split_partial": k_split_partial,
    "merge_turns": k_merge_turns,
    "alter_value": k_alter_value,
    "drop_arg": k_drop_arg,
    "extra_arg": k_extra_arg,
    "alter_function": k_alter_function,
    "drop_call": k_drop_call,
    "duplicate_call": k_duplicate_call,
    "move_call": k_move_call,
    "reorder_calls": k_reorder_calls,
    "missing_turn": k_missing_turn,
    "extra_turn": k_extra_turn,
    "empty_result": k_empty_result,
    "inference_error": k_inference_error,
}
PROMPTING_KINDS: dict[str, KindFn] = {
    "verbatim_task_text": k_verbatim_task_text,
    "positional_one": k_positional_one,
    "positional_all": k_positional_all,
    "text_and_calls": k_text_and_calls,
    "wrapping": k_wrapping,
    "literal_forms": k_literal_forms,
    "name_value": k_name_value,
    "arithmetic": k_arithmetic,
    "unary_plus": k_unary_plus,
    "double_negative": k_double_negative,
    "unary_not": k_unary_not,
    "set_value": k_set_value,
    "ellipsis_value": k_ellipsis_value,
    "subscript_value": k_subscript_value,
    "dict_value_forms": k_dict_value_forms,
    "other_expression": k_other_expression,
    "nested_call_kw": k_nested_call_kw,
    "nested_call_nokw": k_nested_call_nokw,
    "empty_dict_value": k_empty_dict_value,
    "attribute_callee": k_attribute_callee,
    "star_kwargs": k_star_kwargs,
    "bare_string_turn": k_bare_string_turn,
}
FC_KINDS: dict[str, KindFn] = {
    "fc_json_args": k_fc_json_args,
    "fc_mixed_args": k_fc_mixed_args,
    "fc_bad_json": k_fc_bad_json,
    "fc_non_object_json": k_fc_non_object_json,
    "fc_multi_key": k_fc_multi_key,
    "fc_empty_item": k_fc_empty_item,
    "fc_bare_dict": k_fc_bare_dict,
    "fc_text_call": k_fc_text_call,
    "fc_non_dict_item": k_fc_non_dict_item,
    "fc_odd_names": k_fc_odd_names,
    "fc_odd_keys": k_fc_odd_keys,
    "fc_special_values": k_fc_special_values,
}
#: kinds every task gets in every run, per format (the rest are sampled, see :func:`generate`)
ALWAYS = {PROMPTING: ("verbatim", "verbatim_task_text"), FC: ("verbatim", "fc_json_args")}
#: kinds that apply to only a few tasks: every task they apply to gets them, on top of the rest
RARE = {PROMPTING: ("dict_value_forms",), FC: ()}


def kinds_for(fmt: str) -> dict[str, KindFn]:
    return {**COMMON_KINDS, **(PROMPTING_KINDS if fmt == PROMPTING else FC_KINDS)}


def _variant_kind(kind: str, task: Task) -> str:
    """``verbatim_task_text`` is reported as ``verbatim_task_positional`` for a task whose
    ground truth has positional arguments (the case that matters)."""
    if kind == "verbatim_task_text" and any(c.args for turn in task.ground_truth_calls for c in turn):
        return "verbatim_task_positional"
    return kind


def make_record(task: Task, kind: str, fmt: str, seed: int = 0) -> GeneratedRecord | None:
    """One record of ``kind`` for ``task`` in ``fmt`` (None: the kind does not apply)."""
    rng = random.Random(f"{seed}:{task.id}:{fmt}:{kind}")
    variant = kinds_for(fmt)[kind](task, base_plan(task, rng), rng, fmt)
    if variant is None:
        return None
    plan, detail = variant
    record = json.loads(json.dumps({"id": task.id, "result": render(plan, fmt)}))  # as read from a file
    return GeneratedRecord(_variant_kind(kind, task), fmt, record, detail)


def generate(
    seed: int = 0,
    per_task: int | None = 7,
    formats: Sequence[str] = FORMATS,
    tasks: Iterable[Task | str] | None = None,
    kinds: Iterable[str] | None = None,
) -> Iterator[GeneratedRecord]:
    """Records for every task (default: all 800) in every format, deterministic for ``seed``.

    Each task gets the :data:`ALWAYS` kinds of a format plus ``per_task`` others, taken in turn
    from a seeded cycle through that format's kinds so that every kind lands on about the same
    number of tasks (a kind that does not apply to a task passes to the next one);
    ``per_task=None`` gives every kind to every task. ``kinds`` restricts to those kinds."""
    chosen = [get_task(t) if isinstance(t, str) else t for t in (load_tasks() if tasks is None else tasks)]
    wanted = None if kinds is None else set(kinds)
    if wanted is not None and "verbatim_task_text" in wanted:
        wanted.add("verbatim_task_positional")
    for fmt in formats:
        always = ALWAYS[fmt]
        rare = RARE[fmt]
        cycle = [k for k in kinds_for(fmt) if k not in always and k not in rare]
        random.Random(f"{seed}:{fmt}:cycle").shuffle(cycle)
        position = 0
        for task in chosen:
            items = [make_record(task, kind, fmt, seed) for kind in (*always, *rare)]
            if per_task is None:
                items += [make_record(task, kind, fmt, seed) for kind in cycle]
            else:
                tried, made = 0, 0
                while made < per_task and tried < len(cycle):
                    item = make_record(task, cycle[position % len(cycle)], fmt, seed)
                    position += 1
                    tried += 1
                    if item is not None:
                        items.append(item)
                        made += 1
            for item in items:
                if item is not None and (wanted is None or item.kind in wanted):
                    yield item


# -- the two pipelines ---------------------------------------------------------------------------

_names = itertools.count()
#: the official error types by toolenv's failure names (inference errors fail as force_terminated)
OFFICIAL_TO_TOOLENV = {
    "multi_turn:inference_error": "force_terminated",
    "multi_turn:force_terminated": "force_terminated",
    "multi_turn:empty_turn_model_response": "empty_turn",
    "multi_turn:instance_state_mismatch": "state_mismatch",
    "multi_turn:execution_response_mismatch": "response_mismatch",
}


@lru_cache(maxsize=None)
def _entries(category: str) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in raw_entries(category)}


def is_fc_record(record: dict[str, Any]) -> bool:
    """A guess at the format of a record: FC when some step is a list or dict. A function-calling
    record whose every step is text cannot be told apart; pass ``fc`` explicitly then."""
    result = record.get("result")
    if not isinstance(result, list):
        return False
    return any(isinstance(step, (list, dict)) for turn in result if isinstance(turn, list) for step in turn)


def official_decode(result: list[Any], fc: bool) -> list[list[list[str]]]:
    """The eval runner's decoding loop: each step through the format's decoder, steps whose
    decoding raises or is empty skipped."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response
    from bfcl_eval.model_handler.utils import convert_to_function_call, default_decode_execute_prompting

    decode = convert_to_function_call if fc else default_decode_execute_prompting
    decoded = []
    for turn in result:
        steps = []
        for step in turn:  # a string turn is iterated character by character, as the runner does
            try:
                calls = decode(step)
                if is_empty_execute_response(calls):
                    continue
                steps.append(calls)
            except Exception:
                continue
        decoded.append(steps)
    return decoded


def official_verdict(record: dict[str, Any], fc: bool | None = None) -> tuple[bool, str | None]:
    """``(passed, error_type)`` of the official pipeline on one record (error_type as the
    official score file writes it, e.g. ``multi_turn:instance_state_mismatch``; None when it
    passes). ``fc``: decode as a function-calling model's record (None: :func:`is_fc_record`)."""
    from tests.oracle import _reset_official_process_state, forget_official_instances, require_official

    require_official()
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    task = get_task(record["id"])
    ground_truth = [list(turn) for turn in task.ground_truth]
    result = record["result"]
    if type(result) != list:  # noqa: E721 - the runner's own test
        return False, "multi_turn:inference_error"
    if len(result) != len(ground_truth):
        return False, "multi_turn:force_terminated"
    decoded = official_decode(result, is_fc_record(record) if fc is None else fc)
    entry = dict(_entries(task.category)[task.id])
    entry.pop("function", None)  # the runner deletes it before checking
    _reset_official_process_state()
    name = f"toolenvpipeline{next(_names)}"
    try:
        outcome = multi_turn_checker(decoded, ground_truth, entry, task.bfcl_category, name)
    finally:
        forget_official_instances(name + "_")
    return (True, None) if outcome["valid"] else (False, outcome["error_type"])


def toolenv_verdict(record: dict[str, Any], fc: bool | None = None) -> tuple[bool, str | None]:
    """``(passed, failure)`` of toolenv on one record (``trajectory_from_bfcl`` +
    ``score_trajectory``). ``fc``: the handler kind, passed on as ``bfcl evaluate`` knows it from
    the model (None: toolenv tells it from the record's shape)."""
    from evaluators.interop import trajectory_from_bfcl
    from evaluators.scoring import score_trajectory

    task = get_task(record["id"])
    if fc is not None and _takes_function_calling():
        trajectory = trajectory_from_bfcl(record, task, function_calling=fc)
    else:
        trajectory = trajectory_from_bfcl(record, task)
    verdict = score_trajectory(trajectory, task).verdict
    return verdict.passed, verdict.failure


@lru_cache(maxsize=1)
def _takes_function_calling() -> bool:
    from evaluators.interop import trajectory_from_bfcl

    return "function_calling" in inspect.signature(trajectory_from_bfcl).parameters


# -- the runner itself, for checking the harness ---------------------------------------------------


class _GenericHandler:
    """The generic handlers' ``decode_execute`` (``OpenAICompletionsHandler`` and most others):
    the FC converter for function-calling models, the prompting decoder otherwise."""

    def __init__(self, fc: bool) -> None:
        self.is_fc_model = fc

    def decode_execute(self, result: Any, has_tool_call_tag: bool) -> list[str]:
        from bfcl_eval.model_handler.utils import convert_to_function_call, default_decode_execute_prompting

        if self.is_fc_model:
            return convert_to_function_call(result)
        return default_decode_execute_prompting(result, has_tool_call_tag)


@lru_cache(maxsize=1)
def _runner_entry_function() -> Callable[..., dict[str, Any]]:
    """``eval_runner._evaluate_single_multi_turn_entry`` from the installed package. The module
    itself imports every vendor SDK (openai, anthropic, ...), which the oracle install leaves
    out, so the function is compiled alone from the module's source, with the two names it uses."""
    import ast
    from pathlib import Path

    import bfcl_eval
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response

    path = Path(bfcl_eval.__file__).parent / "eval_checker" / "eval_runner.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_evaluate_single_multi_turn_entry"]
    namespace: dict[str, Any] = {
        "BaseHandler": object,
        "multi_turn_checker": multi_turn_checker,
        "is_empty_execute_response": is_empty_execute_response,
    }
    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
    return namespace["_evaluate_single_multi_turn_entry"]


def runner_verdict(record: dict[str, Any], fc: bool) -> tuple[bool, str | None]:
    """:func:`official_verdict` computed by the official runner function itself (slower to set
    up, same answer; used to check the harness)."""
    from tests.oracle import _reset_official_process_state, forget_official_instances, require_official

    require_official()
    task = get_task(record["id"])
    entry = json.loads(json.dumps(_entries(task.category)[task.id]))
    ground_truth = [list(turn) for turn in task.ground_truth]
    _reset_official_process_state()
    name = f"toolenvrunner{next(_names)}"
    try:
        outcome = _runner_entry_function()(
            _GenericHandler(fc), task.id, record["result"], ground_truth, entry, name, task.bfcl_category
        )
    finally:
        forget_official_instances(name + "_")
    return (True, None) if outcome["valid"] else (False, outcome["error"]["error_type"])
