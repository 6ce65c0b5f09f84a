"""OOD variants: every transform and compositions of two and three keep all 800 tasks valid.

Valid means (see ood_variants/validate.py): the variant's rewritten ground truth, replayed on the
variant's backends through its name map, gives no error result and the same results as the
official task (value replacements undone through the variant's value map); the replaced values
keep every property the backends act on (property_problems); the oracle played through the real
environment scores 1.0; no renamed canonical name shows in the rendered prompt, nor in any
observation of the episode (observation_leaks). Plus determinism, property tests over random
compositions, and one-line errors for bad specs.
"""

from __future__ import annotations

import itertools
import json
import random

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ood_variants  # noqa: F401  (registers the variant provider)
import toolenv  # noqa: F401  (registers the env ids)
from ood_variants.banks import NAME_SYNONYMS, PHRASES, WORD_SYNONYMS
from ood_variants.naming import canonical_tool_names
from ood_variants.registry import TRANSFORMS, build_draft, make_variant, normalize_spec, parse_spec
from ood_variants.validate import leaked_names, observation_leaks, property_problems, replay_problems, replay_results
from toolenv.checker import check
from toolenv.data import load_tasks
from toolenv.env import BFCLEnv
from toolenv.expert import expert_actions, expert_turns
from toolenv.formats import CODECS, PromptStyle, get_codec

TASKS = load_tasks()
BASE_NAMES = [name for name, t in TRANSFORMS.items() if t.fixed is None]
GROUP_OF = {name: TRANSFORMS[name].group for name in BASE_NAMES}
#: every transform with every one of its options spelled out
EXPLICIT = [f"{name}:{option}" for name in BASE_NAMES for option in TRANSFORMS[name].options]
#: compositions of two and three that use every transform at least once (call formats other
#: than hermes, the training format, so the oracle in the env runs in the variant's format)
PAIRS = [
    "rename_tools+rename_params",
    "shuffle_schema+add_distractors",
    "perturb_values+rewrite_descriptions",
    "rename_tools:opaque+python_list_format",
    "add_distractors:near_duplicate+rename_tools",
    "rename_params:opaque+yaml_docs",
    "perturb_values+tools_in_user",
    "shuffle_schema+json_results",
    "rename_tools+add_distractors:other_api",
    "rename_params:synonym+perturb_values",
]
TRIPLES = [
    "rename_tools+shuffle_schema+python_list_format",
    "add_distractors+rename_tools:camel+rename_params",
    "perturb_values+rename_params+xml_format",
    "rewrite_descriptions:drop+shuffle_schema+python_docs",
    "rename_tools:paraphrase+perturb_values+openai_format",
    "add_distractors:other_api+tagged_results+json_block_format",
    "drop_types+rename_params+python_docs",
]
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def base_results() -> dict[str, list]:
    return {task.id: replay_results(task) for task in TASKS}


def codec_for(variant) -> object:
    options = variant.format_options
    return get_codec(options.get("call_format", "hermes"), PromptStyle.from_options(options))


def problems_for(spec: str, seeds: tuple[int, ...], base_results: dict[str, list]) -> list[str]:
    problems = []
    for seed in seeds:
        for task in TASKS:
            variant = make_variant(task, spec, seed)
            problems += replay_problems(task, variant, expected=base_results[task.id])  # through its value map
            problems += property_problems(task, variant)  # what the backends act on, kept by the values
            problems += [f"{task.id} {spec}@{seed}: leaked {leak}" for leak in leaked_names(task, variant)]
            problems += [f"{spec}@{seed}: observation leak {leak}" for leak in observation_leaks(variant)]
    return problems


@pytest.mark.parametrize("spec", BASE_NAMES)
def test_every_transform_keeps_all_800_tasks_valid_for_several_seeds(spec: str, base_results: dict) -> None:
    problems = problems_for(spec, SEEDS, base_results)
    assert not problems, problems[:5]


@pytest.mark.parametrize("spec", EXPLICIT)
def test_every_option_of_every_transform_keeps_all_800_tasks_valid(spec: str, base_results: dict) -> None:
    problems = problems_for(spec, (7,), base_results)
    assert not problems, problems[:5]


@pytest.mark.parametrize(("seed", "spec"), list(enumerate(PAIRS + TRIPLES)))
def test_compositions_of_two_and_three_keep_all_800_tasks_valid(seed: int, spec: str, base_results: dict) -> None:
    problems = problems_for(spec, (seed,), base_results)  # one seed each, a different one per composition
    assert not problems, problems[:5]


def test_compositions_cover_every_transform() -> None:
    used = {step.transform.group for spec in PAIRS + TRIPLES for step in parse_spec(spec)}
    assert used == set(GROUP_OF.values())


def play_oracle(env: BFCLEnv, task_id: str) -> tuple[float, dict]:
    env.reset(options={"task_id": task_id})
    assert env.task is not None
    for action in expert_actions(env.task, env.codec):
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize(
    "spec",
    [
        "rename_tools+shuffle_schema+python_list_format",
        "perturb_values+rename_params:opaque+xml_format",
        "add_distractors+rename_tools:opaque+openai_format",
        "rewrite_descriptions+tools_in_user+json_block_format",
        "perturb_values+add_distractors:near_duplicate+yaml_docs",
    ],
)
def test_oracle_through_the_real_env_scores_one_on_all_800_variants(spec: str) -> None:
    env = BFCLEnv(ood=spec, ood_seed=5)
    failures = []
    for task in TASKS:
        reward, info = play_oracle(env, task.id)
        if reward != 1.0:
            failures.append((task.id, info.get("verdict")))
    assert not failures, failures[:3]
    assert env.trajectory is not None and env.trajectory.meta["ood"] == normalize_spec(spec)


def test_gym_make_yields_variant_episodes() -> None:
    env = gym.make("BFCL-Travel-v0", ood="rename_tools+shuffle_schema", ood_seed=3)
    obs, info = env.reset(seed=0)
    inner = env.unwrapped
    assert info["ood"] == "rename_tools+shuffle_schema" and info["ood_seed"] == 3
    canonical = {doc["name"] for doc in get_task_docs(inner.task)}
    shown = {tool["function"]["name"] for tool in info["tools"]}
    assert shown and not shown & canonical
    assert all(f'"{name}"' not in obs for name in canonical)
    env.close()


def test_check_env_passes_for_variant_environments() -> None:
    from gymnasium.utils.env_checker import check_env

    for spec in ("rename_tools+add_distractors+xml_format", "perturb_values+tools_in_user+tagged_results"):
        env = gym.make("BFCL-Vehicle-v0", ood=spec, ood_seed=1, observation_mode="messages")
        check_env(env.unwrapped, skip_render_check=False)
        json.dumps(env.spec.kwargs)  # the OOD kwargs stay JSON-serialisable
        env.close()


def get_task_docs(task) -> list[dict]:
    from envs import backend_class

    return [doc for cls in task.involved_classes for doc in backend_class(cls).tool_docs()]


def test_canonical_names_are_not_callable_in_a_renamed_variant_and_distractors_are_not_callable() -> None:
    task = TASKS[0]
    variant = make_variant(task, "rename_tools:opaque+add_distractors:near_duplicate", 1)
    env = BFCLEnv(ood="rename_tools:opaque+add_distractors:near_duplicate", ood_seed=1, call_format="python")
    env.reset(options={"task_id": task.id})
    _, _, _, _, info = env.step("[pwd()]")
    assert info["results"] == ["Error during execution: name 'pwd' is not defined"]
    distractor = next(doc["name"] for doc in variant.tool_docs() if doc["name"] not in variant.name_map.tools)
    _, _, _, _, info = env.step(f"[{distractor}()]")
    assert info["results"] == [f"Error during execution: name '{distractor}' is not defined"]
    real = next(name for name, (canonical, _) in variant.name_map.tools.items() if canonical == "cd")
    _, _, _, _, info = env.step(f"[{real}(nonsense='x')]")
    assert info["results"] == [f"Error during execution: {real}() got an unexpected keyword argument 'nonsense'"]


def test_argument_errors_are_worded_with_the_variant_names() -> None:
    task = TASKS[0]
    variant = make_variant(task, "rename_tools:opaque+rename_params:opaque", 0)
    name = next(n for n, (canonical, _) in variant.name_map.tools.items() if canonical == "cd")
    env = BFCLEnv(ood="rename_tools:opaque+rename_params:opaque", call_format="python")
    env.reset(options={"task_id": task.id})
    _, _, _, _, info = env.step(f"[{name}()]")
    assert info["results"][0].startswith(f"Error during execution: {name}() missing 1 required positional argument: '")
    assert "cd()" not in info["results"][0] and "'folder'" not in info["results"][0]


def test_same_spec_and_seed_give_byte_identical_variants_and_other_seeds_differ() -> None:
    spec = "perturb_values+rename_tools+rename_params+shuffle_schema+add_distractors+rewrite_descriptions"
    sample = TASKS[::37]
    first = [json.dumps(make_variant(t, spec, 4).to_dict()) for t in sample]
    again = [json.dumps(make_variant(t, spec, 4).to_dict()) for t in reversed(sample)][::-1]  # order-independent
    other = [json.dumps(make_variant(t, spec, 5).to_dict()) for t in sample]
    assert first == again
    assert all(a != b for a, b in zip(first, other))


def test_spec_spelling_does_not_change_the_variant() -> None:
    task = TASKS[3]
    assert (
        make_variant(task, " rename_tools + shuffle_schema", 2).to_dict()
        == make_variant(task, "rename_tools+shuffle_schema", 2).to_dict()
    )


def test_official_tasks_and_default_codecs_are_untouched() -> None:
    task = TASKS[0]
    assert set(task.to_dict()) == {
        "id",
        "category",
        "turns",
        "involved_classes",
        "initial_config",
        "ground_truth",
        "held_out",
        "excluded_function",
        "data_version",
    }
    assert task.name_map is None and task.format_options == {} and not task.is_variant
    for name in CODECS:
        assert get_codec(name).style.is_default


def test_variant_records_round_trip_through_json() -> None:
    from toolenv.data import Task

    for spec in ("rename_tools+perturb_values+xml_format", "add_distractors+tools_in_user"):
        for task in TASKS[::97]:
            variant = make_variant(task, spec, 2)
            again = Task.from_dict(json.loads(json.dumps(variant.to_dict())))
            assert again == variant
            assert check(again, oracle_calls(again)).passed


def oracle_calls(task) -> list[list[list]]:
    return [[list(calls)] if calls else [] for calls in task.ground_truth_calls]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("rename_toolz", "unknown OOD transform 'rename_toolz'"),
        ("rename_tools:weird", "unknown option 'weird'"),
        ("python_list_format+xml_format", "incompatible OOD spec"),
        ("rename_tools+rename_tools:opaque", "incompatible OOD spec"),
        ("", "empty OOD spec"),
    ],
)
def test_bad_specs_give_one_line_errors_listing_the_valid_names(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_spec(spec)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert "rename_tools[:synonym|paraphrase|opaque|camel|pascal]" in message and "python_list_format" in message
    with pytest.raises(ValueError, match=fragment.split("'")[0]):
        BFCLEnv(ood=spec or " ")


def test_banks_never_produce_a_canonical_tool_name() -> None:
    canonical = canonical_tool_names()
    alternatives = {a for alts in WORD_SYNONYMS.values() for a in alts} | {
        a for alts in NAME_SYNONYMS.values() for a in alts
    }
    assert not alternatives & canonical
    words = {w for _, alts in PHRASES for alt in alts for w in alt.replace("\\1", " ").split()}
    assert not words & canonical


# -- properties -------------------------------------------------------------------------------

GROUPS: dict[str, list[str]] = {}
for _name in TRANSFORMS:
    GROUPS.setdefault(TRANSFORMS[_name].group, []).append(_name)


@st.composite
def specs(draw: st.DrawFn) -> str:
    groups = draw(st.lists(st.sampled_from(sorted(GROUPS)), min_size=1, max_size=4, unique=True))
    names = []
    for group in groups:
        name = draw(st.sampled_from(GROUPS[group]))
        options = TRANSFORMS[name].options if TRANSFORMS[name].fixed is None else ()
        option = draw(st.sampled_from((None,) + options))
        names.append(name + (f":{option}" if option else ""))
    return "+".join(names)


@given(spec=specs(), seed=st.integers(0, 2**31), index=st.integers(0, len(TASKS) - 1))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_compositions_are_valid_deterministic_and_playable(spec: str, seed: int, index: int) -> None:
    task = TASKS[index]
    draft = build_draft(task, spec, seed)
    variant = draft.build(normalize_spec(spec), seed)
    assert variant.value_map == draft.values
    assert not replay_problems(task, variant)
    assert not property_problems(task, variant)
    assert not leaked_names(task, variant, codec_for(variant))
    assert not observation_leaks(variant)
    assert json.dumps(make_variant(task, spec, seed).to_dict()) == json.dumps(variant.to_dict())
    # the ground truth only calls callable, offered-or-revealed names
    offered = {doc["name"] for doc in variant.tool_docs(revealed_up_to=len(variant.turns))}
    callable_ = set(variant.name_map.tools) if variant.name_map else offered
    assert all(call.name in offered & callable_ for turn in variant.ground_truth_calls for call in turn)
    codec = codec_for(variant)
    steps = [[list(step_calls)] if step_calls else [] for step_calls in variant.ground_truth_calls]
    assert check(variant, steps).passed
    assert len(expert_turns(variant, codec)) == len(variant.turns)


@given(spec=specs(), seed=st.integers(0, 50))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_variants_are_independent_of_task_order(spec: str, seed: int) -> None:
    sample = random.Random(seed).sample(TASKS, 6)
    forward = {t.id: make_variant(t, spec, seed) for t in sample}
    backward = {t.id: make_variant(t, spec, seed) for t in reversed(sample)}
    assert forward == backward


@pytest.mark.slow
@pytest.mark.parametrize("size", [2, 3])
def test_every_composition_of_two_and_three_groups_is_valid(size: int, base_results: dict) -> None:
    """Exhaustive: every combination of two and of three transform groups (options drawn by the
    seed), all 800 tasks; pairs with three seeds, triples with one seed each (a different one)."""
    problems = []
    for number, combo in enumerate(itertools.combinations(sorted(GROUPS), size)):
        spec = "+".join(group_base(group) for group in combo)
        problems += problems_for(spec, SEEDS if size == 2 else (number,), base_results)
    assert not problems, problems[:5]


def group_base(group: str) -> str:
    return next(name for name in GROUPS[group] if TRANSFORMS[name].fixed is None)
