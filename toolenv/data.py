"""BFCL-V3 multi-turn tasks, read from the pinned official distribution as immutable records.

The four scored categories (base, miss_func, miss_param, long_context; 200 entries each) are
JSON Lines files inside bfcl-eval. They are read as bytes and parsed with :mod:`json`; the
package is never imported. See :mod:`envs._official` for where the files come from.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from envs import BACKEND_MODULES, backend_class
from envs._official import DataError, distribution, release_of, resolve_version
from toolenv.calls import Call, parse_python_call
from toolenv.executor import NameMap

CATEGORIES: tuple[str, ...] = ("base", "miss_func", "miss_param", "long_context")
_PREFIX = "multi_turn_"
PRIMARY_CLASSES = ("GorillaFileSystem", "VehicleControlAPI", "TradingBot", "TravelAPI")


#: short API name (as the reports write it: ``by_api`` in evaluators.scoring) → official class
#: name; derived from envs.BACKEND_MODULES (the one per-API table) so no second list can drift:
#: the module's file name, without the ``_api`` suffix (``envs.math_api`` → ``math``)
API_SHORT_NAMES: dict[str, str] = {
    module.rsplit(".", 1)[-1].removesuffix("_api"): class_name for class_name, module in BACKEND_MODULES.items()
}


def normalize_api(name: str) -> str:
    """An API by class name or short name, any case (``"travel"``, ``"TravelAPI"``,
    ``"travelapi"``) → its official class name; a one-line error listing both kinds otherwise."""
    if isinstance(name, str):
        folded = name.strip().casefold()
        for class_name in BACKEND_MODULES:
            if folded == class_name.casefold():
                return class_name
        for short, class_name in API_SHORT_NAMES.items():
            if folded == short:
                return class_name
    raise DataError(
        f"unknown API {name!r}; valid: {', '.join(API_SHORT_NAMES)} (or the class names {', '.join(BACKEND_MODULES)})"
    )


def normalize_category(name: str) -> str:
    """``"multi_turn_base"`` or ``"base"`` → ``"base"``; a one-line error for anything else."""
    short = name[len(_PREFIX) :] if name.startswith(_PREFIX) else name
    if short not in CATEGORIES:
        raise DataError(f"unknown category {name!r}; valid: {', '.join(CATEGORIES)}")
    return short


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Task:
    """One BFCL multi-turn entry. Immutable: mutable views are returned as fresh copies.

    ``turns[t]`` holds the user messages of turn t (empty for a miss_func reveal turn);
    ``ground_truth[t]`` the reference call strings of turn t; ``held_out`` pairs a turn index
    with the function names revealed at that turn (miss_func only).
    """

    id: str
    category: str
    turns: tuple[tuple[Message, ...], ...]
    involved_classes: tuple[str, ...]
    ground_truth: tuple[tuple[str, ...], ...]
    held_out: tuple[tuple[int, tuple[str, ...]], ...]
    data_version: str
    initial_config_json: str
    excluded_function: tuple[str, ...] = ()
    # Variant fields. Empty for the official tasks, so their records, prompts and replays are
    # unchanged; an upper layer (ood_variants) fills them and everything below reads them
    # generically. ``tool_docs_json``: the variant's own docs (a JSON list of every doc it can
    # offer, held-out ones included, in offer order). ``name_map_json``: ``{variant tool:
    # [canonical tool, {variant parameter: canonical parameter}]}``, applied by the executor so
    # that variant calls run on the canonical backends (see :class:`toolenv.executor.NameMap`).
    # ``format_json``: ``{"call_format", "docs", "tools_in", "results"}`` for the environment.
    # ``ood_spec``/``ood_seed``: the spec string and seed that made the variant.
    # ``value_map_json``: ``{original value: variant value}`` of the perturbed values (file,
    # folder, user names ...), so that anyone can map the variant's observations back.
    tool_docs_json: str = ""
    name_map_json: str = ""
    format_json: str = ""
    ood_spec: str = ""
    ood_seed: int = 0
    value_map_json: str = ""

    @property
    def initial_config(self) -> dict[str, Any]:
        """A fresh copy of the scenario: ``{class_name: config}``."""
        return json.loads(self.initial_config_json)

    @cached_property
    def _scenario_blobs(self) -> dict[str, bytes]:
        config = self.initial_config
        return {name: pickle.dumps(config.get(name, {}), pickle.HIGHEST_PROTOCOL) for name in self.involved_classes}

    def scenario(self, class_name: str) -> dict[str, Any]:
        """A fresh copy of one involved class's scenario (``{}`` when the data gives none).

        Faster than ``initial_config[class_name]``: each class's part is kept pre-serialised."""
        return pickle.loads(self._scenario_blobs[class_name])

    @property
    def bfcl_category(self) -> str:
        return _PREFIX + self.category

    @property
    def index(self) -> int:
        return int(self.id.rsplit("_", 1)[1])

    @property
    def long_context(self) -> bool:
        """Backends run in long-context mode for this category (as the reference decides)."""
        return "long_context" in self.category or "composite" in self.category

    @property
    def primary_class(self) -> str:
        """The API the entry is built around (entries come in blocks of 50 per primary API);
        ``involved_classes`` does not always list it first."""
        for name in self.involved_classes:
            if name in PRIMARY_CLASSES:
                return name
        return self.involved_classes[0]

    def held_out_at(self, turn: int) -> tuple[str, ...]:
        """Function names revealed at ``turn`` (empty for ordinary turns)."""
        for index, names in self.held_out:
            if index == turn:
                return names
        return ()

    @property
    def held_out_names(self) -> frozenset[str]:
        return frozenset(name for _, names in self.held_out for name in names)

    def tool_docs(self, revealed_up_to: int | None = None) -> list[dict[str, Any]]:
        """Official docs offered to the model, in ``involved_classes`` order.

        With ``revealed_up_to=None`` this is the initial tool list (held-out functions
        removed); with a turn index, functions revealed at or before it are included, appended
        in reveal order as the reference does.
        """
        hidden = self.held_out_names
        if self.tool_docs_json:
            docs = json.loads(self.tool_docs_json)
        else:
            docs = [doc for cls in self.involved_classes for doc in backend_class(cls, self.release).tool_docs()]
        offered = [doc for doc in docs if doc["name"] not in hidden]
        if revealed_up_to is not None:
            by_name = {doc["name"]: doc for doc in docs}
            for index, names in self.held_out:
                if index <= revealed_up_to:
                    offered += [by_name[name] for name in names]
        return offered

    @property
    def value_map(self) -> dict[str, str]:
        """The variant's perturbed values, ``{original: variant}`` (empty for none)."""
        return json.loads(self.value_map_json) if self.value_map_json else {}

    @cached_property
    def release(self) -> str:
        """The bfcl-eval release the task comes from (``"2026.3.23"``), read from ``data_version``:
        the backends, docs and checker replay of this task are that release's."""
        return release_of(self.data_version)

    @property
    def is_variant(self) -> bool:
        return bool(self.ood_spec)

    @cached_property
    def name_map(self) -> NameMap | None:
        """How the variant's names map back to the backends (None: the canonical names)."""
        return NameMap.from_json(self.name_map_json) if self.name_map_json else None

    @property
    def format_options(self) -> dict[str, str]:
        """The variant's call format and prompt style (``{}``: the environment's own)."""
        return json.loads(self.format_json) if self.format_json else {}

    @cached_property
    def ground_truth_calls(self) -> tuple[tuple[Call, ...], ...]:
        return tuple(tuple(parse_python_call(text) for text in turn) for turn in self.ground_truth)

    def _record(self) -> list[tuple[str, Any, bool]]:
        """``(key, value, is_json_text)`` of the record, in order; variant fields only when set,
        so an official task's record is unchanged."""
        items: list[tuple[str, Any, bool]] = [
            ("id", self.id, False),
            ("category", self.category, False),
            ("turns", [[m.to_dict() for m in turn] for turn in self.turns], False),
            ("involved_classes", list(self.involved_classes), False),
            ("initial_config", self.initial_config_json, True),
            ("ground_truth", [list(turn) for turn in self.ground_truth], False),
            ("held_out", {str(index): list(names) for index, names in self.held_out}, False),
            ("excluded_function", list(self.excluded_function), False),
            ("data_version", self.data_version, False),
        ]
        items += [
            (key, text, True)
            for key, text in (
                ("tool_docs", self.tool_docs_json),
                ("name_map", self.name_map_json),
                ("format", self.format_json),
                ("value_map", self.value_map_json),
            )
            if text
        ]
        if self.ood_spec:
            items.append(("ood", {"spec": self.ood_spec, "seed": self.ood_seed}, False))
        return items

    def to_dict(self) -> dict[str, Any]:
        return {key: json.loads(value) if is_json else value for key, value, is_json in self._record()}

    def to_json(self) -> str:
        """``json.dumps(self.to_dict())``, byte for byte, without decoding and re-encoding the
        JSON the task already holds (scenario, docs, name map): the fast way to write records."""
        return (
            "{"
            + ", ".join(
                f"{json.dumps(key)}: {value if is_json else json.dumps(value)}"
                for key, value, is_json in self._record()
            )
            + "}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        return cls(
            id=data["id"],
            category=normalize_category(data["category"]),
            turns=tuple(tuple(Message(m["role"], m["content"]) for m in t) for t in data["turns"]),
            involved_classes=tuple(data["involved_classes"]),
            ground_truth=tuple(tuple(turn) for turn in data["ground_truth"]),
            held_out=tuple((int(k), tuple(v)) for k, v in data.get("held_out", {}).items()),
            data_version=data["data_version"],
            initial_config_json=json.dumps(data["initial_config"]),
            excluded_function=tuple(data.get("excluded_function", ())),
            tool_docs_json=json.dumps(data["tool_docs"]) if data.get("tool_docs") else "",
            name_map_json=json.dumps(data["name_map"]) if data.get("name_map") else "",
            format_json=json.dumps(data["format"]) if data.get("format") else "",
            value_map_json=json.dumps(data["value_map"]) if data.get("value_map") else "",
            ood_spec=str(data.get("ood", {}).get("spec", "")),
            ood_seed=int(data.get("ood", {}).get("seed", 0)),
        )


def load_task_file(path: str | Path) -> list[Task]:
    """Tasks from a JSON Lines file of :meth:`Task.to_dict` records (e.g. the ``tasks.jsonl`` that
    ``toolenv ood generate`` writes); a one-line :class:`DataError` for a malformed file."""
    tasks = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        tasks.append(Task.from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise DataError(f"{path}:{number}: not a task record ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read task file {path}: {exc.strerror or exc}") from None
    if not tasks:
        raise DataError(f"{path} holds no tasks")
    return tasks


def _jsonl(relative: str, version: str | None = None) -> list[dict[str, Any]]:
    text = distribution(version).read_text(relative)
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(
            f"bfcl_eval/{relative} is not valid JSON Lines ({exc}); run `toolenv data fetch --force`"
        ) from None


def raw_entries(category: str, data_version: str | None = None) -> list[dict[str, Any]]:
    """The official prompt entries of a category, as parsed JSON (fresh dicts); ``data_version``
    is a release (default: the process's, see :mod:`envs._official`)."""
    short = normalize_category(category)
    return _jsonl(f"data/BFCL_v4_{_PREFIX}{short}.json", data_version)


def raw_ground_truth(category: str, data_version: str | None = None) -> list[dict[str, Any]]:
    short = normalize_category(category)
    return _jsonl(f"data/possible_answer/BFCL_v4_{_PREFIX}{short}.json", data_version)


@lru_cache(maxsize=16)
def _load_category(short: str, release: str) -> tuple[Task, ...]:
    version = distribution(release).data_version
    prompts = raw_entries(short, release)
    answers = {entry["id"]: entry["ground_truth"] for entry in raw_ground_truth(short, release)}
    tasks = []
    for entry in prompts:
        if entry["id"] not in answers:
            raise DataError(f"{entry['id']} has no ground truth in the official data")
        tasks.append(
            Task(
                id=entry["id"],
                category=short,
                turns=tuple(tuple(Message(m["role"], m["content"]) for m in turn) for turn in entry["question"]),
                involved_classes=tuple(entry["involved_classes"]),
                ground_truth=tuple(tuple(turn) for turn in answers[entry["id"]]),
                held_out=tuple(sorted((int(k), tuple(v)) for k, v in entry.get("missed_function", {}).items())),
                data_version=version,
                initial_config_json=json.dumps(entry.get("initial_config", {})),
                excluded_function=tuple(entry.get("excluded_function", ())),
            )
        )
    return tuple(tasks)


def load_tasks(categories: str | Iterable[str] | None = None, data_version: str | None = None) -> list[Task]:
    """Tasks of the given categories (default: all four), in category then id order, of one
    release (``data_version``, e.g. ``"2025.10.2"``; default: the process's release)."""
    if categories is None:
        wanted: Iterable[str] = CATEGORIES
    elif isinstance(categories, str):
        wanted = [categories]
    else:
        wanted = categories
    release = resolve_version(data_version)
    return [task for short in map(normalize_category, wanted) for task in _load_category(short, release)]


TASK_ID_EXAMPLE = "multi_turn_base_5"


def get_task(task_id: str, data_version: str | None = None) -> Task:
    """One task by id (``"multi_turn_base_17"``); a one-line error if it does not exist, saying
    what an id looks like (so ``"5"`` is not mistaken for a category)."""
    if "@" in str(task_id):  # a labelled task cut from an official one (toolenv.curriculum)
        from toolenv.curriculum import resolve_curriculum_id

        task = resolve_curriculum_id(str(task_id), data_version)
        if task is None:
            raise DataError(
                f"unknown labelled task {task_id!r}; a curriculum id looks like multi_turn_base@curriculum-t1-f6-s0_5"
            )
        return task
    category, _, number = str(task_id).rpartition("_")
    short = category[len(_PREFIX) :] if category.startswith(_PREFIX) else None
    if short not in CATEGORIES or not number.isdigit():
        raise DataError(
            f"unknown task {task_id!r}; a task id looks like {TASK_ID_EXAMPLE} "
            f"({_PREFIX}<category>_<index>, category one of {', '.join(CATEGORIES)})"
        )
    tasks = load_tasks(short, data_version)
    for task in tasks:
        if task.id == task_id:
            return task
    raise DataError(f"no task with id {task_id!r}; {short} holds {tasks[0].id} … {tasks[-1].id}")


def data_version(release: str | None = None) -> str:
    """What reports record for a release (default: the process's): package, version, source."""
    return distribution(release).data_version
