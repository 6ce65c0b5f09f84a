"""Checks that a variant is valid: solvable, faithful to its task, and free of canonical names.

- :func:`replay_problems`: the variant's ground truth, replayed on the variant's own backends
  (through its name map), gives no error result, and every result equals the official task's
  result once the value replacements are undone. So renaming and reformatting change nothing
  the backends compute, and perturbed values are used consistently. It includes
  :func:`value_problems`: a ground-truth value the replacement changed is a name or is quoted
  in the user's turns (a replay alone cannot see a value the user could no longer derive).
- :func:`leaked_names`: no renamed tool's canonical name appears as a whole word in the
  rendered prompt, and no renamed parameter's canonical name is a parameter in the docs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

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


def replay_problems(
    base: Task,
    variant: Task,
    values: Mapping[str, str] | None = None,
    expected: list[list[tuple[bool, str]]] | None = None,
) -> list[str]:
    """What is wrong with the variant's replay (empty: nothing). ``values``: the replacements
    made (original → new); ``expected``: the base replay, if already computed."""
    expected = expected if expected is not None else replay_results(base)
    got = replay_results(variant)
    inverse = {new: old for old, new in (values or {}).items()}
    pattern = _undo(values or {})
    problems = []
    if [len(turn) for turn in got] != [len(turn) for turn in expected]:
        return [f"{variant.id}: ground-truth shape changed"]
    for turn, (want, have) in enumerate(zip(expected, got)):
        for index, ((_ok0, text0), (ok1, text1)) in enumerate(zip(want, have)):
            if not ok1:
                problems.append(f"{variant.id} turn {turn} call {index}: error result {text1[:160]!r}")
            elif pattern is not None:
                text1 = pattern.sub(lambda m: inverse[m.group(1)], text1)
            if ok1 and text1 != text0:
                problems.append(
                    f"{variant.id} turn {turn} call {index}: result differs: {text0[:120]!r} vs {text1[:120]!r}"
                )
    return problems + value_problems(base, variant, values or {})


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
