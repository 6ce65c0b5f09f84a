"""OOD value perturbations keep what the backends act on; the value map; ``drop_types``.

Each value property has its own test (see docs/ood.md, "what each transform preserves"), the
defect that started it first: ``perturb_values`` renamed ``.hidden_file`` to a name without the
leading dot, so the file system no longer hid it while the user still asked for "visible and
hidden contents" (the ground truth's ``ls(a=True)`` replayed identically, so nothing noticed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ood_variants  # noqa: F401  (registers the variant provider)
from envs import backend_class
from ood_variants.banks import ENTITY_WORDS
from ood_variants.draft import Draft
from ood_variants.generate import PARQUET, dataset_row, generate, load_variant_tasks, record_line, row_task
from ood_variants.registry import TRANSFORMS, build_draft, make_variant, parse_spec, valid_names
from ood_variants.transforms import drop_type_words
from ood_variants.validate import property_problems, replay_problems, undo_values, undoer
from ood_variants.value_checks import PROPERTY_CHECKS, case_kept, hidden_kept, searches_kept
from ood_variants.value_names import build, case_signature, name_parts, ordered_names, word_count
from ood_variants.values import _bounds, apply_values, directory_listings
from tests.oracle import OfficialSide
from toolenv.data import Task, get_task, load_tasks
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions

HIDDEN_TASKS = [f"multi_turn_{category}_1" for category in ("base", "miss_func", "miss_param", "long_context")]


def _listings(task, config) -> dict[tuple[str, ...], list[str]]:
    """``ls()`` (hidden names left out, as the backend does) of every directory, by path."""
    fs = backend_class("GorillaFileSystem", task.release)()
    fs.load_scenario(config.get("GorillaFileSystem", {}), long_context=task.long_context)
    found: dict[tuple[str, ...], list[str]] = {}
    stack = [((), fs.root)]
    while stack:
        path, directory = stack.pop()
        fs._current_dir = directory
        found[path] = fs.ls()["current_directory_content"]
        stack += [(path + (name,), item) for name, item in directory.contents.items() if hasattr(item, "contents")]
    return found


@pytest.mark.parametrize("task_id", HIDDEN_TASKS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_perturb_values_keeps_hidden_files_hidden(task_id: str, seed: int) -> None:
    """The defect: ``.hidden_file`` lost its dot, so ``ls()`` showed it in the variant."""
    task = get_task(task_id)
    draft = build_draft(task, "perturb_values", seed)
    renamed = dict(draft.values)
    assert all(old.startswith(".") == new.startswith(".") for old, new in renamed.items()), renamed
    base = _listings(task, task.initial_config)
    variant = _listings(task, draft.config)
    mapped = {
        tuple(renamed.get(p, p) for p in path): [renamed.get(n, n) for n in names] for path, names in base.items()
    }
    assert variant == mapped


# -- every property on all 800 tasks x 3 seeds, and each check catches a broken map -------------

TASKS = load_tasks()
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def perturbed() -> list[tuple[Task, Task]]:
    """(task, variant) for every task and seed of ``perturb_values`` that replaced values."""
    pairs = [(task, make_variant(task, "perturb_values", seed)) for seed in SEEDS for task in TASKS]
    return [(task, variant) for task, variant in pairs if variant.value_map]


def test_values_are_replaced_in_half_of_the_tasks(perturbed: list) -> None:
    assert len(perturbed) == 3 * 400
    assert sum(len(variant.value_map) for _, variant in perturbed) >= 3 * 1200


@pytest.mark.parametrize("name", list(PROPERTY_CHECKS))
def test_property_holds_on_all_800_tasks_for_three_seeds(name: str, perturbed: list) -> None:
    check = PROPERTY_CHECKS[name]
    problems = [f"{v.id}@{v.ood_seed}: {p}" for task, v in perturbed for p in check(task, v, v.value_map)]
    assert not problems, problems[:5]


def broken(task_id: str, mapping: dict[str, str], edit: Callable[[Draft], None] | None = None) -> tuple[Task, Task]:
    """A variant of ``task_id`` with a hand-made (bad) value map applied consistently."""
    task = get_task(task_id)
    draft = Draft.from_task(task)
    apply_values(draft, mapping)
    if edit is not None:
        edit(draft)
    return task, draft.build("perturb_values", 0)


def _first_find_task() -> tuple[str, str, str]:
    """A task whose ground truth runs ``find(name=…)``, the query, and a file it does not match."""
    for task in TASKS:
        for turn in task.ground_truth_calls:
            for call in turn:
                query = call.kwargs.get("name")
                if call.name == "find" and isinstance(query, str):
                    names = [n for listing in directory_listings(task.initial_config) for n in listing]
                    other = next((n for n in names if query not in n and "." in n), None)
                    if other is not None:
                        return task.id, query, other
    raise AssertionError("no find task")


def _edit_content(draft: Draft) -> None:
    draft.config["GorillaFileSystem"]["root"]["workspace"]["contents"]["archive"] = {
        "type": "file",
        "content": "new",
    }


FIND_TASK, FIND_QUERY, FIND_OTHER = _first_find_task()
BROKEN = {
    "hidden": ("multi_turn_base_1", {".hidden_file": "hidden_birch"}, None),
    "extension": ("multi_turn_base_0", {"final_report.pdf": "mosaic_canyon.txt"}, None),
    "separators": ("multi_turn_base_0", {"document": "birch/canyon"}, None),
    "characters": ("multi_turn_base_0", {"final_report.pdf": "final*report.pdf"}, None),
    "case": ("multi_turn_base_0", {"document": "Birch"}, None),
    "digits": ("multi_turn_base_0", {"document": "birch2024"}, None),
    "unique": ("multi_turn_base_0", {"final_report.pdf": "birch.pdf", "previous_report.pdf": "birch.pdf"}, None),
    "order": ("multi_turn_base_0", {"final_report.pdf": "zephyr_umber.pdf"}, None),
    "searches": (FIND_TASK, {FIND_OTHER: f"{FIND_QUERY}_birch.{FIND_OTHER.rpartition('.')[2]}"}, None),
    "special_names": ("multi_turn_base_0", {"final_report.pdf": "log.txt"}, None),
    "contents": ("multi_turn_base_0", {"document": "birch"}, _edit_content),
}


@pytest.mark.parametrize("name", list(PROPERTY_CHECKS))
def test_each_property_check_catches_a_map_that_breaks_it(name: str) -> None:
    task_id, mapping, edit = BROKEN[name]
    task, variant = broken(task_id, mapping, edit)
    assert PROPERTY_CHECKS[name](task, variant, variant.value_map), name
    assert any(f": {name}: " in p for p in property_problems(task, variant))


def test_every_property_has_a_broken_example() -> None:
    assert set(BROKEN) == set(PROPERTY_CHECKS)


# -- the name shapes, over any name (hypothesis) ------------------------------------------------

NAMES = st.from_regex(r"\.{0,2}[A-Za-z0-9][A-Za-z0-9_\- ]{0,14}(\.[A-Za-z0-9]{1,4}){0,2}", fullmatch=True).filter(
    lambda name: name_parts(name) is not None
)


def shaped_replacement(name: str, data: st.DataObject) -> str:
    parts = name_parts(name)
    assert parts is not None
    words = data.draw(st.lists(st.sampled_from(ENTITY_WORDS), min_size=word_count(parts), max_size=word_count(parts)))
    return build(parts, words)


@given(name=NAMES, data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_replacement_keeps_the_leading_dots(name: str, data: st.DataObject) -> None:
    new = shaped_replacement(name, data)
    assert len(new) - len(new.lstrip(".")) == len(name) - len(name.lstrip("."))
    assert not hidden_kept(get_task("multi_turn_base_1"), get_task("multi_turn_base_1"), {name: new})


@given(name=NAMES, data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_replacement_keeps_the_suffix(name: str, data: st.DataObject) -> None:
    new = shaped_replacement(name, data)
    assert os.path.splitext(new)[1] == os.path.splitext(name)[1]
    assert new.lstrip(".").partition(".")[2] == name.lstrip(".").partition(".")[2]


@given(name=NAMES, data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_replacement_adds_no_separator_or_refused_character(name: str, data: st.DataObject) -> None:
    new = shaped_replacement(name, data)
    assert new.isascii() and not set(new) & set('|/\\?%*:"><(')
    assert {c for c in new if not c.isalnum()} <= set(name) and new not in (".", "..")


@given(name=NAMES, data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_replacement_keeps_the_case_of_every_word(name: str, data: st.DataObject) -> None:
    new = shaped_replacement(name, data)
    assert case_signature(new) == case_signature(name)
    assert not case_kept(TASKS[0], TASKS[0], {name: new})


@given(name=NAMES, data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_replacement_keeps_the_digits_and_is_never_numeric(name: str, data: st.DataObject) -> None:
    new = shaped_replacement(name, data)
    assert re.findall(r"\d+", new) == re.findall(r"\d+", name) and re.search("[A-Za-z]{2}", new)


@given(name=st.from_regex(r"[\d._\- ]{1,8}", fullmatch=True))
def test_numeric_looking_names_are_never_replaced(name: str) -> None:
    assert name_parts(name) is None


SCOPE = st.lists(st.from_regex(r"\.?[A-Za-z][a-z]{1,6}[0-9]{0,2}(\.txt|\.pdf)?", fullmatch=True), unique=True)


@given(scope=SCOPE.filter(lambda s: 1 <= len(s) <= 12), data=st.data(), seed=st.integers(0, 2**31))
@settings(max_examples=300, deadline=None)
def test_replacements_keep_the_sorted_order_with_the_kept_names_and_are_unique(
    scope: list[str], data: st.DataObject, seed: int
) -> None:
    renamed = data.draw(st.lists(st.sampled_from(scope), unique=True))
    used: set[str] = set()
    mapping = ordered_names(renamed, ENTITY_WORDS, random.Random(seed), _bounds(renamed, [scope]), used)
    assert set(mapping) <= set(renamed)
    assert len(set(mapping.values())) == len(mapping)  # unique
    assert [mapping.get(n, n) for n in sorted(scope)] == sorted(mapping.get(n, n) for n in scope)  # order
    assert len(used) == len(mapping)  # one leading word each: distinct from other kinds of names
    if len(renamed) <= 3 and not set(scope) - set(renamed):  # nothing kept around them: all fit
        assert set(mapping) == set(renamed)


@given(
    index=st.integers(0, len(TASKS) - 1),
    seed=st.integers(0, 2**31),
    spec=st.sampled_from(["perturb_values", "rename_tools+perturb_values", "perturb_values+rename_params+drop_types"]),
)
@settings(max_examples=150, deadline=None)
def test_every_property_holds_for_any_seed_and_composition(index: int, seed: int, spec: str) -> None:
    task = TASKS[index]
    variant = make_variant(task, spec, seed)
    assert not property_problems(task, variant)
    assert not replay_problems(task, variant)


def test_a_search_whose_query_is_a_name_matches_the_same_entries() -> None:
    """``find(name='Backup')`` also finds ``BackupResearch``: renaming ``Backup`` alone would make
    the search miss it, so that replacement is dropped while the others stay."""
    tree = {"Backup": {"type": "directory", "contents": {}}, "BackupResearch": {"type": "directory", "contents": {}}}
    tree["notes"] = {"type": "directory", "contents": {}}
    config = {"GorillaFileSystem": {"root": {"alex": {"type": "directory", "contents": tree}}}}
    task = dataclasses.replace(
        get_task("multi_turn_base_3"),
        initial_config_json=json.dumps(config),
        involved_classes=("GorillaFileSystem",),
        ground_truth=(("find(path='.', name='Backup')", "cd(folder='notes')"),),
        turns=(get_task("multi_turn_base_3").turns[0],),
        held_out=(),
    )
    variant = make_variant(task, "perturb_values", 0)
    assert set(variant.value_map) == {"notes"}
    assert not searches_kept(task, variant, variant.value_map) and not replay_problems(task, variant)
    draft = Draft.from_task(task)
    apply_values(draft, {"Backup": "Birch", "notes": "canyon"})  # what it would have been
    assert searches_kept(task, draft.build("perturb_values", 0), {"Backup": "Birch", "notes": "canyon"})


# -- the official engine: the variant's ground truth, mapped back to canonical names ---------


@pytest.fixture(scope="module")
def official_base() -> dict[str, list[list[str]]]:
    results = {}
    for task in TASKS:
        if make_variant(task, "perturb_values", 0).value_map:
            with OfficialSide(task.involved_classes, task.initial_config, task.long_context, task.id) as side:
                results[task.id] = [side.run(list(turn)) for turn in task.ground_truth]
    return results


@pytest.mark.parametrize(
    ("spec", "seed"),
    [
        ("perturb_values", 0),
        ("perturb_values", 1),
        ("perturb_values", 2),
        ("rename_tools+rename_params+perturb_values", 3),
    ],
)
def test_perturbed_ground_truth_replays_on_the_official_engine(spec: str, seed: int, official_base: dict) -> None:
    """bfcl-eval's own engine, from the variant's scenario, on the variant's ground truth mapped
    back to canonical names: its results are the official task's once the value map is undone."""
    checked, problems = 0, []
    for task in TASKS:
        variant = make_variant(task, spec, seed)
        if not variant.value_map:
            continue
        assert task.id in official_base, task.id  # the same tasks get values with every seed
        name_map = variant.name_map
        calls = [
            [(name_map.translate(call) if name_map else call).to_python() for call in turn]  # type: ignore[union-attr]
            for turn in variant.ground_truth_calls
        ]
        undo = undoer(variant.value_map)
        with OfficialSide(variant.involved_classes, variant.initial_config, variant.long_context, task.id) as side:
            got = [[undo(result) for result in side.run(turn)] for turn in calls]
        checked += 1
        if got != official_base[task.id]:
            problems.append(f"{task.id}: {got} != {official_base[task.id]}"[:400])
    assert checked == 400 and not problems, problems[:3]


# -- the value map -----------------------------------------------------------------------------


def test_the_value_map_is_in_the_variant_its_record_and_its_table_row() -> None:
    task = get_task("multi_turn_base_1")
    draft = build_draft(task, "rename_params+perturb_values", 4)
    variant = draft.build("rename_params+perturb_values", 4)
    assert variant.value_map == draft.values and ".hidden_file" in variant.value_map
    record = json.loads(record_line(variant))
    assert record["value_map"] == variant.value_map
    assert Task.from_dict(record) == variant
    row = dataset_row(variant)
    assert json.loads(row["value_map"]) == variant.value_map and row_task(row) == variant
    plain = make_variant(task, "rename_tools", 4)
    assert "value_map" not in plain.to_dict() and dataset_row(plain)["value_map"] == "{}"
    assert row_task(dataset_row(plain)) == plain
    old_row = {k: v for k, v in dataset_row(plain).items() if k != "value_map"}  # a table written before
    assert row_task(old_row) == plain


def test_generated_sets_carry_the_value_map(tmp_path: Path) -> None:
    tasks = [get_task("multi_turn_base_1"), get_task("multi_turn_base_0"), get_task("multi_turn_base_5")]
    generate(tmp_path, tasks, ["perturb_values"], 2, tables=True)
    expected = [make_variant(task, "perturb_values", 2) for task in tasks]
    assert load_variant_tasks(tmp_path) == expected
    assert load_variant_tasks(tmp_path / PARQUET) == expected
    assert all(v.value_map for v in expected[:2])


def test_replays_undo_values_through_the_variant_value_map() -> None:
    task = get_task("multi_turn_base_1")
    variant = make_variant(task, "perturb_values", 0)
    assert not replay_problems(task, variant)  # the map is the variant's own
    assert replay_problems(task, variant, values={})  # nothing undone: results differ
    text = json.dumps(variant.value_map)
    assert undo_values(text, variant.value_map) == json.dumps({k: k for k in variant.value_map})


# -- drop_types --------------------------------------------------------------------------------


def _schemas(node: object) -> list[dict]:
    """Every parameter schema of a doc's parameters, nested ones too."""
    found = []
    stack = list(node.values()) if isinstance(node, dict) else []
    while stack:
        schema = stack.pop()
        if isinstance(schema, dict):
            found.append(schema)
            stack += list((schema.get("properties") or {}).values())
            stack += [schema[key] for key in ("items", "additionalProperties") if isinstance(schema.get(key), dict)]
    return found


TYPE_STATEMENT = re.compile(
    r"\((?:str|string|int|integer|float|bool|boolean|list|array|dict)\)|\b(?:an integer|a string)\b"
)


@pytest.mark.parametrize("seed", SEEDS)
def test_drop_types_all_removes_every_argument_type_and_keeps_the_rest(seed: int) -> None:
    for task in TASKS[::20]:
        variant = make_variant(task, "drop_types:all", seed)
        original = {doc["name"]: doc for doc in task.tool_docs(revealed_up_to=len(task.turns))}
        for doc in variant.tool_docs(revealed_up_to=len(variant.turns)):
            parameters = doc["parameters"]
            assert parameters["type"] == original[doc["name"]]["parameters"]["type"]  # the object itself
            assert list(parameters["properties"]) == list(original[doc["name"]]["parameters"]["properties"])
            assert parameters.get("required") == original[doc["name"]]["parameters"].get("required")
            for schema in _schemas(parameters["properties"]):
                assert "type" not in schema, (doc["name"], schema)
                assert not TYPE_STATEMENT.search(str(schema.get("description", "")))
            assert doc.get("response") == original[doc["name"]].get("response")  # results: not arguments
            assert doc["description"] == original[doc["name"]]["description"]


def test_drop_types_some_is_seeded_and_strips_a_sample() -> None:
    task = get_task("multi_turn_base_0")

    def stripped(seed: int) -> set[tuple[str, str]]:
        docs = make_variant(task, "drop_types:some", seed).tool_docs()
        return {(d["name"], p) for d in docs for p, s in d["parameters"]["properties"].items() if "type" not in s}

    every = {(d["name"], p) for d in task.tool_docs() for p in d["parameters"]["properties"]}
    samples = [stripped(seed) for seed in range(6)]
    assert samples[0] == stripped(0)  # seeded
    assert len({frozenset(s) for s in samples}) > 1  # another seed, another sample
    assert all(0 < len(s) < len(every) for s in samples)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The name of the file (string).", "The name of the file."),
        ("How many (int, optional)", "How many (optional)"),
        ("Type: integer. The ticket id.", "The ticket id."),
        ("ids (list of str)", "ids"),
        ("tags (List[str])", "tags"),
        ("Must be an integer.", "Must be a value."),
        ("a list of strings to add", "values to add"),
        ("List of tags for the tweet.", "Tags for the tweet."),
        ("[Optional] The list of intermediary cities.", "[Optional] The intermediary cities."),
        ("Dictionary containing the fields to be updated.", "The fields to be updated."),
        # not type statements: unchanged
        ("Defaults to an empty string.", "Defaults to an empty string."),
        ("The number to round.", "The number to round."),
        ("A stringent rule applies.", "A stringent rule applies."),
        ("the stock symbol to add", "the stock symbol to add"),
    ],
)
def test_drop_types_rewrites_only_phrases_that_state_a_type(text: str, expected: str) -> None:
    assert drop_type_words(text) == expected


@given(
    st.lists(
        st.sampled_from(["the", "file", "to", "move", "folder", "number", "name", "of", "a", "new", "."]), max_size=12
    )
)
def test_drop_types_leaves_text_without_type_words_alone(words: list[str]) -> None:
    text = " ".join(words)
    assert drop_type_words(text) == text


def test_drop_types_is_registered_listed_and_composes() -> None:
    transform = TRANSFORMS["drop_types"]
    assert (transform.kind, transform.group, transform.options) == ("content", "types", ("all", "some"))
    assert "drop_types[:all|some]" in valid_names()
    spec = "drop_types+rename_params+perturb_values+python_docs"
    assert [step.transform.name for step in parse_spec(spec)] == [
        "drop_types",
        "rename_params",
        "perturb_values",
        "python_docs",
    ]
    with pytest.raises(ValueError, match="incompatible"):
        parse_spec("drop_types:all+drop_types:some")


@pytest.mark.parametrize("spec", ["drop_types+python_docs+xml_format", "rename_params+drop_types:some+yaml_docs"])
def test_drop_types_variants_play_to_reward_one_and_replay_identically(spec: str) -> None:
    env = BFCLEnv(ood=spec, ood_seed=2)
    for task in TASKS[::8]:
        variant = make_variant(task, spec, 2)
        assert not replay_problems(task, variant)
        env.reset(options={"task_id": task.id})
        for action in expert_actions(env.task, env.codec):
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        assert reward == 1.0, task.id
