"""Checks that a variant is valid: solvable, faithful to its task, and free of canonical names.

- :func:`replay_problems`: the variant's ground truth, replayed on the variant's own backends
  (through its name map), gives no error result, and every result equals the official task's
  result once the value replacements are undone. So renaming and reformatting change nothing
  the backends compute, and perturbed values are used consistently.
- :func:`leaked_names`: no renamed tool's canonical name appears as a whole word in the
  rendered prompt, and no renamed parameter's canonical name is a parameter in the docs.
"""

from __future__ import annotations

import json
import re
from typing import Mapping

from toolenv.data import Task
from toolenv.env import tool_specs
from toolenv.executor import Session
from toolenv.formats import Codec


def replay_results(task: Task) -> list[list[tuple[bool, str]]]:
    """``(ok, text)`` of every ground-truth call, by turn, on fresh backends of ``task``."""
    session = Session.for_task(task)
    return [[(r.ok, r.text) for r in session.execute_all(turn)] for turn in task.ground_truth_calls]


def _undo(values: Mapping[str, str]) -> "re.Pattern[str] | None":
    if not values:
        return None
    ordered = sorted(values.values(), key=len, reverse=True)
    return re.compile(r"(?<![\w.\-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w\-]|\.\w)")


def replay_problems(base: Task, variant: Task, values: Mapping[str, str] | None = None,
                    expected: list[list[tuple[bool, str]]] | None = None) -> list[str]:
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
        for index, ((ok0, text0), (ok1, text1)) in enumerate(zip(want, have)):
            if not ok1:
                problems.append(f"{variant.id} turn {turn} call {index}: error result {text1[:160]!r}")
            elif pattern is not None:
                text1 = pattern.sub(lambda m: inverse[m.group(1)], text1)
            if ok1 and text1 != text0:
                problems.append(f"{variant.id} turn {turn} call {index}: result differs: {text0[:120]!r} vs {text1[:120]!r}")
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
