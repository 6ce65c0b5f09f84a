"""Checks that a variant is valid: solvable, faithful to its task, and free of canonical names.

- :func:`replay_problems`: the variant's ground truth, replayed on the variant's own backends
  (through its name map), gives no error result, and every result equals the official task's
  result once the value replacements are undone (the variant's value map, :func:`undo_values`).
  So renaming and reformatting change nothing the backends compute, and perturbed values are
  used consistently. It includes :func:`value_problems`: a ground-truth value the replacement
  changed is a name or is quoted in the user's turns (a replay alone cannot see a value the
  user could no longer derive).
- :func:`property_problems`: every replaced value keeps what the backends act on (a hidden
  name stays hidden, suffixes, separators, case, digits, uniqueness, sorted order, substring
  searches …; one check per property in :mod:`ood_variants.value_checks`), which a replay
  cannot always see.
- :func:`leaked_names`: no renamed tool's canonical name appears as a whole word in the
  rendered prompt, and no renamed parameter's canonical name is a parameter in the docs.
- :func:`observation_leaks`: no renamed canonical name appears in a result the model sees,
  in the oracle episode or after failing probe calls (data excepted; ``toolenv.observations``
  rewrites the places where backends and Python name tools and parameters).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Callable, Mapping

from toolenv.data import Task
from toolenv.executor import Session
from toolenv.formats import Codec, tool_specs


def replay_results(task: Task) -> list[list[tuple[bool, str]]]:
    """``(ok, text)`` of every ground-truth call, by turn, on fresh backends of ``task``."""
    session = Session.for_task(task)
    return [[(r.ok, r.text) for r in session.execute_all(turn)] for turn in task.ground_truth_calls]


def _undo(values: Mapping[str, str]) -> "re.Pattern[str] | None":
    if not values:
        return None
    ordered = sorted(values.values(), key=len, reverse=True)
    return re.compile(r"(?<![\w.\-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w\-]|\.\w)")


def undo_values(text: str, values: Mapping[str, str]) -> str:
    """``text`` (a result, a turn) with every variant value of ``values`` (original → variant,
    a task's :attr:`~toolenv.data.Task.value_map`) put back to its original."""
    return undoer(values)(text)


def undoer(values: Mapping[str, str]) -> Callable[[str], str]:
    """:func:`undo_values` for one value map, its pattern compiled once."""
    pattern = _undo(values)
    if pattern is None:
        return lambda text: text
    inverse = {new: old for old, new in values.items()}
    return lambda text: pattern.sub(lambda m: inverse[m.group(1)], text)


def replay_problems(
    base: Task,
    variant: Task,
    values: Mapping[str, str] | None = None,
    expected: list[list[tuple[bool, str]]] | None = None,
) -> list[str]:
    """What is wrong with the variant's replay (empty: nothing). ``values``: the replacements
    made (original → new), by default the variant's own value map; ``expected``: the base
    replay, if already computed."""
    values = variant.value_map if values is None else values
    expected = expected if expected is not None else replay_results(base)
    got = replay_results(variant)
    undo = undoer(values)
    problems = []
    if [len(turn) for turn in got] != [len(turn) for turn in expected]:
        return [f"{variant.id}: ground-truth shape changed"]
    for turn, (want, have) in enumerate(zip(expected, got)):
        for index, ((_ok0, text0), (ok1, text1)) in enumerate(zip(want, have)):
            if not ok1:
                problems.append(f"{variant.id} turn {turn} call {index}: error result {text1[:160]!r}")
            else:
                text1 = undo(text1)
            if ok1 and text1 != text0:
                problems.append(
                    f"{variant.id} turn {turn} call {index}: result differs: {text0[:120]!r} vs {text1[:120]!r}"
                )
    return problems + value_problems(base, variant, values)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple, set)):
        return [s for item in value for s in _strings(item)]
    return []


_SEPARATORS = re.compile(r"[\s,;/]+")


def _only_names(old: str, new: str, names: set[str]) -> bool:
    """The value is a list or path of names: every token is a replaced name, or an unchanged
    file-like token (``'file1.txt, jasper.txt'``, ``'document/temp'``); not a sentence."""
    old_tokens, new_tokens = _SEPARATORS.split(old), _SEPARATORS.split(new)
    return len(old_tokens) == len(new_tokens) and all(
        b in names or (a == b and ("." in a or not a)) for a, b in zip(old_tokens, new_tokens)
    )


def value_problems(base: Task, variant: Task, values: Mapping[str, str]) -> list[str]:
    """Ground-truth string arguments the value replacement changed must be either built from
    names alone (``'final_report.pdf'``, ``'document/temp'``, ``'a.txt, b.txt'``) or quoted in the
    variant's user turns: a changed value the user never states (a sentence the model would
    copy from a file, say) would make the variant unsolvable as written, yet replay identically."""
    if not values:
        return []
    turns = "\n".join(m.content for turn in variant.turns for m in turn).replace("\\", "")
    names = set(values.values())
    problems = []
    for turn, (old_calls, new_calls) in enumerate(zip(base.ground_truth_calls, variant.ground_truth_calls)):
        for old_call, new_call in zip(old_calls, new_calls):
            old_strings = _strings(list(old_call.args) + list(old_call.kwargs.values()))
            new_strings = _strings(list(new_call.args) + list(new_call.kwargs.values()))
            for old, new in zip(old_strings, new_strings):
                # (a quote may lose its final stop or gain escapes in the user's text: BFCL's data)
                if old == new or new.rstrip(".!? ") in turns or _only_names(old, new, names):
                    continue
                problems.append(
                    f"{variant.id} turn {turn}: ground-truth value {old[:80]!r} became {new[:80]!r}, "
                    "which the user never states"
                )
    return problems


def property_problems(base: Task, variant: Task) -> list[str]:
    """What the variant's value replacements break of what the backends act on: hidden names,
    suffixes, path separators, characters, case, digits, uniqueness, sorted order, substring
    searches, long-context names, file contents (:mod:`ood_variants.value_checks`, one check per
    property). Empty: nothing, or no values replaced."""
    from ood_variants.value_checks import property_problems as check

    return check(base, variant)


def rendered_prompt(task: Task, codec: Codec) -> str:
    """Everything the model is shown about the tools, wherever the style places it: the tool
    prompt (system prompt or start of the first user message) and the reveal messages. The
    user's own words are not included (``sort the file`` is a request, not a leaked name)."""
    tools = tool_specs(task.tool_docs())
    parts = [codec.system_prompt(tools)]
    for turn, names in task.held_out:
        revealed = tool_specs(d for d in task.tool_docs(revealed_up_to=turn) if d["name"] in names)
        parts.append(codec.reveal_message(revealed))
    return "\n".join(parts)


def leaked_names(base: Task, variant: Task, codec: Codec | None = None) -> list[str]:
    """Canonical names of renamed tools found as whole words in what the model is shown about
    the tools, and canonical names of renamed parameters found among the docs' parameters.

    With a ``codec``, the text checked is the rendered prompt (:func:`rendered_prompt`); without,
    the JSON of every doc the variant can offer, which is what every rendering is made from (the
    codecs' own instructions name no tool), and far cheaper for bulk checks."""
    name_map = variant.name_map
    if name_map is None:
        return []
    renamed_tools = {canonical for tool, (canonical, _) in name_map.tools.items() if tool != canonical}
    docs = variant.tool_docs(revealed_up_to=len(variant.turns))
    leaks = []
    if renamed_tools:
        text = rendered_prompt(variant, codec) if codec is not None else json.dumps(docs)
        leaks += [f"tool {name!r}" for name in renamed_tools & set(_WORD.findall(text))]
    for doc in docs:
        entry = name_map.tools.get(doc["name"])
        if entry is None:
            continue
        renamed = {canonical for name, canonical in entry[1].items() if name != canonical}
        shown = set((doc.get("parameters", {}).get("properties") or {}))
        leaks += [f"parameter {doc['name']}.{p}" for p in renamed & shown]
    return sorted(set(leaks))


_WORD = re.compile(r"\w+")


# -- observations --------------------------------------------------------------------------

#: a value no scenario holds: wrong paths, names and ids in the probe calls
_PROBE_VALUE = "zz_no_such_value"


def probe_calls(call: Any, doc: Mapping[str, Any] | None) -> list[Any]:
    """Failing variants of one ground-truth call (variant names), so that error paths show:
    a missing required argument, none at all, an unexpected keyword, too many positional
    arguments, a positional argument that collides with a keyword one, and each argument in
    turn replaced by a wrong value (a missing or invalid path or name, an empty one, 0, -1, an
    empty list, a wrong type)."""
    from toolenv.calls import Call

    kwargs = dict(call.kwargs)
    required = [name for name in (doc or {}).get("parameters", {}).get("required", []) if name in kwargs]
    probes = [Call(call.name, (), {**kwargs, "zz_not_a_parameter": 1}), Call(call.name, tuple(range(len(kwargs) + 2)))]
    if required:
        probes.append(Call(call.name, (), {k: v for k, v in kwargs.items() if k != required[0]}))
    if len(required) > 1:
        probes.append(Call(call.name))
    if kwargs:
        probes.append(Call(call.name, (_PROBE_VALUE,), kwargs))
    for key, value in kwargs.items():
        if isinstance(value, bool):
            wrong: list[Any] = [not value]
        elif isinstance(value, (int, float)):
            wrong = [0, -1]
        elif isinstance(value, str):
            wrong = [_PROBE_VALUE, "", "zz/no|such"]
        elif isinstance(value, (list, tuple)):
            wrong = [[], [_PROBE_VALUE]]
        else:
            wrong = [_PROBE_VALUE]
        wrong.append([[_PROBE_VALUE]])  # a wrong type: exceptions raised inside the method
        probes += [Call(call.name, (), {**kwargs, key: item}) for item in wrong]
    return probes


def observations(variant: Task, probes: bool = True) -> list[tuple[str, str]]:
    """``(tool, result text)`` of every call of the variant's oracle episode, on fresh backends
    through its name map (what the environment shows, before the codec wraps it), and with
    ``probes`` also of :func:`probe_calls` before each ground-truth call. The probes of a call
    run, one after the other, on a second session whose instance of the called API is set to
    a copy of the oracle's as it is before that call, so they meet the oracle's state (its
    login, its files) and their side effects stay off it."""
    import pickle

    from envs import tool_owner

    oracle = Session.for_task(variant)
    probe = Session.for_task(variant) if probes else None
    name_map = variant.name_map
    docs = {doc["name"]: doc for doc in variant.tool_docs(revealed_up_to=len(variant.turns))}
    seen = []
    for turn in variant.ground_truth_calls:
        for call in turn:
            if probe is not None:
                method = name_map.tools[call.name][0] if name_map is not None else call.name
                owner = tool_owner(method, variant.involved_classes, variant.release)
                if owner is not None:  # the instance's whole state, private parts included
                    state = pickle.loads(pickle.dumps(vars(oracle.instances[owner]), pickle.HIGHEST_PROTOCOL))
                    vars(probe.instances[owner]).clear()
                    vars(probe.instances[owner]).update(state)
                seen += [(extra.name, probe.execute(extra).text) for extra in probe_calls(call, docs.get(call.name))]
            seen.append((call.name, oracle.execute(call).text))
    return seen


def observation_leaks(variant: Task, probes: bool = True) -> list[str]:
    """Canonical names of renamed tools and parameters that the variant's observations show.

    The observations are the results of the variant's oracle episode and of failing probe
    calls (:func:`observations`). A renamed tool's canonical name leaks where it appears as a
    whole word (the rule of :func:`leaked_names`), in any result. A renamed parameter's
    canonical name leaks in a result of its own tool where it is quoted in an execution error
    (Python's argument errors quote parameter names), or where a code-like name (with ``_`` or
    a capital, the names ``rename_params`` rewrites in descriptions) appears as a whole word
    that the variant's docs do not show anyway (result keys are the docs' response fields). A
    plain-word name elsewhere is a word (``Only one folder level …``), and a name the variant
    itself uses for that tool's parameters is not a leak. Occurrences that are data (a word of the scenario, the user's turns, the
    backends' initial state or the long-context filler) do not count. Empty: no leak."""
    name_map = variant.name_map
    if name_map is None:
        return []
    from toolenv.executor import ERROR_PREFIX

    data = _data_words(variant)
    tools = {canonical for tool, (canonical, _) in name_map.tools.items() if tool != canonical} - data
    params = {
        tool: {target for name, target in entry.items() if name != target} - data - set(entry)
        for tool, (_, entry) in name_map.tools.items()
    }
    every = tools.union(*params.values())
    if not every:
        return []
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(every, key=len, reverse=True))) + r")(?!\w)")
    shown: set[str] | None = None  # the words of every doc the variant can offer, when needed
    leaks: dict[str, str] = {}
    for tool, text in observations(variant, probes):
        if pattern.search(text) is None:  # the common case
            continue
        text = _PYTHON_WORDING.sub("", text)
        for match in pattern.finditer(text):
            word = match.group(1)
            if word in tools:
                kind = "tool"
            elif word in params.get(tool, ()):
                if not (text.startswith(ERROR_PREFIX) and f"'{word}'" in text):  # not Python's quote
                    if "_" not in word and word == word.lower():
                        continue  # a plain word ("folder level"), as descriptions keep it too
                    if shown is None:  # (the variant's own docs' JSON holds every doc it can offer)
                        docs = variant.tool_docs_json or json.dumps(variant.tool_docs(len(variant.turns)))
                        shown = set(_WORD.findall(docs))
                    if word in shown:
                        continue  # a result key: an output field the docs' response schemas show
                kind = "parameter"
            else:
                continue
            start = max(0, match.start() - 40)
            leaks.setdefault(
                f"{kind} {word!r}",
                f"{variant.id}: {kind} {word!r} in a result of {tool}: {text[start : match.end() + 40]!r}",
            )
    return sorted(leaks.values())


#: Python's own exception texts that use a word which is also a tool's name, not about the tool
_PYTHON_WORDING = re.compile(r"can't multiply sequence by non-int")


def _data_words(variant: Task) -> set[str]:
    """The words that are data in a variant's observations: its scenario, the user's turns, the
    backends' initial state (defaults included) and, in long-context tasks, the official
    long-context filler the backends add to their state and results."""
    words = set(_WORD.findall(variant.initial_config_json))
    words.update(word for turn in variant.turns for message in turn for word in _WORD.findall(message.content))
    words.update(_WORD.findall(repr(Session.for_task(variant).public_state())))
    if variant.long_context:
        words |= _filler_words(variant.release)
    return words


@lru_cache(maxsize=None)
def _filler_words(release: str) -> frozenset[str]:
    from envs._official import BACKEND_SOURCE_DIR, distribution

    return frozenset(_WORD.findall(distribution(release).read_text(f"{BACKEND_SOURCE_DIR}/long_context.py")))
