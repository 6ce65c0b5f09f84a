"""The mutable working copy of a task that transforms edit, and its conversion to a ``Task``.

A :class:`Draft` keeps every name in *variant space*: the tool docs the model will see (all of
them, held-out and distractor docs included, in offer order), the map from each variant tool
and parameter name back to the canonical backend method and parameter, the ground truth as
keyword-only calls written with variant names, the user turns, the scenario and the format
options. Renames go through :meth:`Draft.rename_tools` and :meth:`Draft.rename_params`, which
update all of these together, so no transform can leave a stale name behind.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from envs import backend_class
from toolenv.calls import Call
from toolenv.data import Message, Task
from toolenv.executor import NameMap, keyword_call


@lru_cache(maxsize=None)
def canonical_docs(class_name: str, version: str) -> tuple[str, ...]:
    """The official docs of one API in one release, as JSON texts (parsed afresh for every draft)."""
    return tuple(json.dumps(doc) for doc in backend_class(class_name, version).tool_docs())


@lru_cache(maxsize=None)
def _docs_blob(classes: tuple[str, ...], version: str) -> bytes:
    docs = [json.loads(text) for name in classes for text in canonical_docs(name, version)]
    return pickle.dumps(docs, pickle.HIGHEST_PROTOCOL)


def fresh_docs(classes: tuple[str, ...], version: str) -> list[dict[str, Any]]:
    """A private copy of the official docs of these APIs, in order (unpickling a cached blob
    is several times faster than parsing JSON or deep-copying)."""
    return pickle.loads(_docs_blob(classes, version))


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it (dict keys too), structure kept."""
    kind = type(value)
    if kind is str:
        return fn(value)
    if kind is list:
        return [map_strings(v, fn) for v in value]
    if kind is tuple:
        return tuple(map_strings(v, fn) for v in value)
    if kind is dict:
        return {map_strings(k, fn): map_strings(v, fn) for k, v in value.items()}
    return value


def map_descriptions(node: Any, fn: Callable[[str], str]) -> None:
    """Apply ``fn`` in place to every ``"description"`` string in a doc (nested schemas too)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for key, value in item.items():
                kind = type(value)
                if kind is str:
                    if key == "description":
                        item[key] = fn(value)
                elif kind is dict or kind is list:
                    stack.append(value)
        else:
            stack.extend(v for v in item if type(v) is dict or type(v) is list)


def word_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """A regex matching any of ``words`` as a whole identifier-like word (longest first)."""
    ordered = sorted(set(words), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(r"(?<![\w])(" + "|".join(map(re.escape, ordered)) + r")(?![\w])")


@lru_cache(maxsize=1 << 16)
def identifiers(text: str) -> frozenset[str]:
    """The identifier-like words of a text (descriptions repeat across tasks: cached)."""
    return frozenset(re.findall(r"\w+", text))


def replace_words(text: str, pattern: re.Pattern[str] | None, mapping: Mapping[str, str]) -> str:
    if pattern is None or identifiers(text).isdisjoint(mapping):  # the common case: nothing to replace
        return text
    return pattern.sub(lambda m: mapping[m.group(1)], text)


@dataclass
class Draft:
    """A task being transformed (see the module docstring)."""

    base: Task
    docs: list[dict[str, Any]]
    names: dict[str, tuple[str, dict[str, str]]]
    turns: list[list[dict[str, str]]]
    truth: list[list[Call]]
    held_out: list[tuple[int, list[str]]]
    excluded: list[str]
    config: dict[str, Any]
    format: dict[str, str] = field(default_factory=dict)
    distractors: set[str] = field(default_factory=set)
    #: what was edited, so untouched parts of the base task are kept byte for byte
    changed: set[str] = field(default_factory=set)
    #: value replacements made (original → new): the variant's value map (``Task.value_map``)
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_task(cls, task: Task) -> "Draft":
        if task.is_variant:
            raise ValueError(f"{task.id} is already a variant ({task.ood_spec}); variants are made from official tasks")
        # a curriculum task (toolenv.curriculum) offers its own compact list: the variant
        # transforms that list, so its OOD variants keep the curriculum's tools
        docs = (
            json.loads(task.tool_docs_json) if task.tool_docs_json else fresh_docs(task.involved_classes, task.release)
        )
        names = {}
        for doc in docs:
            params = list((doc.get("parameters", {}).get("properties") or {}))
            names[doc["name"]] = (doc["name"], {p: p for p in params})
        classes = task.involved_classes
        return cls(
            base=task,
            docs=docs,
            names=names,
            turns=[[m.to_dict() for m in turn] for turn in task.turns],
            truth=[[keyword_call(call, classes, task.release) for call in turn] for turn in task.ground_truth_calls],
            held_out=[(index, list(names_)) for index, names_ in task.held_out],
            excluded=list(task.excluded_function),
            config=task.initial_config,
        )

    # -- names -----------------------------------------------------------------------------

    @property
    def tool_names(self) -> list[str]:
        """Current names of the callable tools (distractors excluded), in doc order."""
        return [doc["name"] for doc in self.docs if doc["name"] in self.names]

    @property
    def hidden(self) -> set[str]:
        return {name for _, names in self.held_out for name in names}

    def doc(self, name: str) -> dict[str, Any]:
        return next(doc for doc in self.docs if doc["name"] == name)

    def rename_tools(self, mapping: Mapping[str, str]) -> None:
        """Rename tools (callable or distractor) everywhere: docs, name map, ground truth,
        held-out lists, and every whole-word mention in any description."""
        mapping = {old: new for old, new in mapping.items() if old != new}
        if not mapping:
            return
        for doc in self.docs:
            doc["name"] = mapping.get(doc["name"], doc["name"])
        self.names = {mapping.get(k, k): v for k, v in self.names.items()}
        self.distractors = {mapping.get(k, k) for k in self.distractors}
        self.truth = [[Call(mapping.get(c.name, c.name), (), c.kwargs) for c in turn] for turn in self.truth]
        self.held_out = [(index, [mapping.get(n, n) for n in names]) for index, names in self.held_out]
        self.excluded = [mapping.get(n, n) for n in self.excluded]
        pattern = word_pattern(mapping)
        for doc in self.docs:
            map_descriptions(doc, lambda text: replace_words(text, pattern, mapping))
        self.changed |= {"docs", "names", "truth"}

    def rename_params(self, per_tool: Mapping[str, Mapping[str, str]]) -> None:
        """Rename parameters of tools (current names → new names), in their doc (order kept),
        the name map, the ground truth, and code-like mentions in that tool's descriptions."""
        for tool, mapping in per_tool.items():
            mapping = {old: new for old, new in mapping.items() if old != new}
            if not mapping:
                continue
            doc = self.doc(tool)
            parameters = doc.get("parameters", {})
            properties = parameters.get("properties") or {}
            parameters["properties"] = {mapping.get(k, k): v for k, v in properties.items()}
            if "required" in parameters:
                parameters["required"] = [mapping.get(k, k) for k in parameters["required"]]
            if tool in self.names:
                canonical, params = self.names[tool]
                self.names[tool] = (canonical, {mapping.get(k, k): v for k, v in params.items()})
            code_like = {old: new for old, new in mapping.items() if "_" in old or old != old.lower()}
            pattern = word_pattern(code_like)
            map_descriptions(doc, lambda text, p=pattern, c=code_like: replace_words(text, p, c))
            self.truth = [
                [
                    Call(c.name, (), {mapping.get(k, k): v for k, v in c.kwargs.items()}) if c.name == tool else c
                    for c in turn
                ]
                for turn in self.truth
            ]
        self.changed |= {"docs", "names", "truth"}

    # -- output ----------------------------------------------------------------------------

    def name_map(self) -> NameMap | None:
        identity = all(
            tool == canonical and all(k == v for k, v in params.items())
            for tool, (canonical, params) in self.names.items()
        )
        return None if identity else NameMap(self.names)

    def build(self, spec: str, seed: int) -> Task:
        """The variant as an immutable :class:`Task` (unchanged parts copied from the base)."""
        base = self.base
        name_map = self.name_map()
        return Task(
            id=base.id,
            category=base.category,
            turns=tuple(tuple(Message(m["role"], m["content"]) for m in turn) for turn in self.turns)
            if "turns" in self.changed
            else base.turns,
            involved_classes=base.involved_classes,
            ground_truth=tuple(tuple(call.to_python() for call in turn) for turn in self.truth)
            if "truth" in self.changed
            else base.ground_truth,
            held_out=tuple((index, tuple(names)) for index, names in self.held_out),
            data_version=base.data_version,
            initial_config_json=json.dumps(self.config) if "config" in self.changed else base.initial_config_json,
            excluded_function=tuple(self.excluded),
            tool_docs_json=json.dumps(self.docs) if "docs" in self.changed else base.tool_docs_json,
            name_map_json=name_map.to_json() if name_map is not None else "",
            format_json=json.dumps(self.format) if self.format else "",
            ood_spec=spec,
            ood_seed=seed,
            value_map_json=json.dumps(self.values) if self.values else "",
        )
