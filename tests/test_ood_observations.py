"""Observations of renamed variants say the variant's names, never the canonical ones
(issue #19): the rewrite of results (``toolenv.observations``), its leak check
(``ood_variants.validate.observation_leaks``), data left alone, and verdict parity with the
canonical episode on all 800 tasks."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import pytest

import ood_variants  # noqa: F401  (registers the variant provider)
from ood_variants.registry import make_variant
from ood_variants.validate import observation_leaks, observations, probe_calls
from tests.test_verdict_parity import _alter as alter_call
from toolenv.calls import Call
from toolenv.checker import check
from toolenv.data import Task, get_task, load_tasks
from toolenv.env import BFCLEnv
from toolenv.executor import ERROR_PREFIX, NameMap, Session, keyword_call
from toolenv.observations import TEMPLATES, reword

TASKS = load_tasks()
OPAQUE = "rename_tools:opaque+rename_params:opaque"


def variant_name(variant: Task, canonical: str) -> str:
    assert variant.name_map is not None
    return next(name for name, (target, _) in variant.name_map.tools.items() if target == canonical)


def variant_param(variant: Task, tool: str, canonical: str) -> str:
    assert variant.name_map is not None
    return next(name for name, target in variant.name_map.tools[tool][1].items() if target == canonical)


def template_text(template: str) -> str:
    """A template's text with the canonical names in its slots."""
    return re.sub(r"\{[tp]:(\w+)\}", r"\1", template)


def canonical_traces(variant: Task, text: str) -> list[str]:
    """Where a renamed canonical name sits in a text by construction (whatever the data say):
    the command prefix of an error dict, a qualified method in a Python error, a template."""
    assert variant.name_map is not None
    renamed = {canonical for name, (canonical, _) in variant.name_map.tools.items() if name != canonical}
    found = [name for name in renamed if text.startswith(f'{{"error": "{name}: ')]
    if text.startswith(ERROR_PREFIX) and re.match(r"\w+\.\w+\(\) ", text[len(ERROR_PREFIX) :]):
        found.append("qualified method")
    inverse = {canonical: name for name, (canonical, _) in variant.name_map.tools.items()}
    for method, template in TEMPLATES:
        canonical = template_text(template)
        if method in inverse and text.startswith(canonical):
            if reword(variant.name_map, inverse[method], method, canonical) != canonical:
                found.append(f"template of {method}")
    return found


# -- (a) every observation of every API, error paths included ---------------------------------


@pytest.mark.parametrize("release", [None, "2025.10.2"])
def test_opaque_variants_show_no_canonical_name_in_any_observation(release: str | None) -> None:
    tasks = TASKS if release is None else load_tasks(data_version=release)
    apis, checked, leaks, traces = set(), 0, [], []
    errors = 0
    for task in tasks:
        variant = make_variant(task, OPAQUE, 0)
        apis.update(task.involved_classes)
        seen = observations(variant)
        checked += len(seen)
        errors += sum(1 for _, text in seen if text.startswith((ERROR_PREFIX, '{"error"')))
        traces += [(task.id, tool, text[:120]) for tool, text in seen if canonical_traces(variant, text)]
        leaks += observation_leaks(variant)
    print(f"{len(tasks)} tasks, {checked} observations ({errors} errors), {len(leaks)} leaks")
    assert len(apis) == 8
    assert checked > 50_000 and errors > 10_000  # the probes reach the error paths
    assert not leaks, leaks[:5]
    assert not traces, traces[:5]


def test_every_kind_of_rewritten_message_is_reached_by_the_probes() -> None:
    """The probes exercise each rule: command prefixes, templates, Python's binding errors."""
    kinds: set[str] = set()
    for task in TASKS[::5]:
        variant = make_variant(task, OPAQUE, 0)
        base_session = Session.for_task(task)
        variant_session = Session.for_task(variant)
        assert variant.name_map is not None
        inverse = {canonical: name for name, (canonical, _) in variant.name_map.tools.items()}
        docs = {doc["name"]: doc for doc in task.tool_docs(revealed_up_to=len(task.turns))}
        for turn in task.ground_truth_calls:
            for call in turn:
                call = keyword_call(call, task.involved_classes, task.release)
                for probe in probe_calls(call, docs.get(call.name)) + [call]:
                    before = base_session.execute(probe).text
                    after = variant_session.execute(to_variant(variant, probe)).text
                    if before == after:
                        continue
                    if any(m == probe.name and before.startswith(template_text(t)) for m, t in TEMPLATES):
                        kinds.add(f"template {probe.name}")
                    elif before.startswith(f'{{"error": "{probe.name}: '):
                        kinds.add("command prefix")
                    elif before.startswith(ERROR_PREFIX):
                        kinds.add(before[len(ERROR_PREFIX) :].split("() ", 1)[1].split(" ", 1)[0])
                    else:
                        kinds.add(f"other {probe.name}")
                    assert inverse[probe.name] in after
    print(sorted(kinds))
    assert {"command prefix", "missing", "takes", "got", "template mean", "template wc", "template touch"} <= kinds
    assert not [kind for kind in kinds if kind.startswith("other")]


# -- the rules, one by one --------------------------------------------------------------------

NAMES = NameMap(
    {
        "go": ("cd", {"where": "folder"}),
        "make": ("touch", {"name": "file_name"}),
        "say": ("echo", {"text": "content", "into": "file_name"}),
        "count": ("wc", {"f": "file_name", "how": "mode"}),
        "avg": ("mean", {"nums": "numbers"}),
        "split": ("divide", {"x": "a", "y": "b"}),
        "lowest": ("min_value", {"nums": "numbers"}),
        "search": ("find", {"where": "path", "named": "name"}),
        "balance": ("get_credit_card_balance", {"token": "access_token", "card": "card_id"}),
        "walk": ("mv", {"src": "source", "dst": "destination"}),
    }
)


@pytest.mark.parametrize(
    ("tool", "method", "before", "after"),
    [
        (
            "go",
            "cd",
            '{"error": "cd: \'x\': No such file or directory"}',
            '{"error": "go: \'x\': No such file or directory"}',
        ),
        ("go", "cd", '{"error": "cd: ..: No such directory"}', '{"error": "go: ..: No such directory"}'),
        (
            "make",
            "touch",
            '{"error": "touch: cannot touch \'a\': File exists"}',
            '{"error": "make: cannot make \'a\': File exists"}',
        ),
        (
            "say",
            "echo",
            '{"error": "echo: cannot touch \'a|\': Invalid character"}',
            '{"error": "say: cannot make \'a|\': Invalid character"}',
        ),
        ("count", "wc", '{"error": "wc: invalid mode \'q\'"}', '{"error": "count: invalid how \'q\'"}'),
        (
            "avg",
            "mean",
            '{"error": "Cannot calculate mean of an empty list"}',
            '{"error": "Cannot calculate avg of an empty list"}',
        ),
        ("split", "divide", '{"error": "Cannot divide by zero"}', '{"error": "Cannot split by zero"}'),
        (
            "lowest",
            "min_value",
            '{"error": "Cannot find minimum of an empty list"}',
            '{"error": "Cannot search minimum of an empty list"}',
        ),
        (
            "balance",
            "get_credit_card_balance",
            "{\"error\": \"Card not registered. Here are a list of card_id's: ['card_id', 'cd']\"}",
            "{\"error\": \"Card not registered. Here are a list of card's: ['card_id', 'cd']\"}",
        ),
        (
            "walk",
            "mv",
            f"{ERROR_PREFIX}GorillaFileSystem.mv() missing 2 required positional arguments: 'source' and 'destination'",
            f"{ERROR_PREFIX}walk() missing 2 required positional arguments: 'src' and 'dst'",
        ),
        (
            "search",
            "find",
            f"{ERROR_PREFIX}GorillaFileSystem.find() got multiple values for argument 'path'",
            f"{ERROR_PREFIX}search() got multiple values for argument 'where'",
        ),
        (
            "search",
            "find",
            f"{ERROR_PREFIX}GorillaFileSystem.find() takes from 1 to 3 positional arguments but 5 were given",
            f"{ERROR_PREFIX}search() takes from 1 to 3 positional arguments but 5 were given",
        ),
        # left alone: data after a prefix, other methods' and Python's own texts, result keys,
        # English words that are also a parameter's name
        ("go", "cd", '{"current_working_directory": "cd"}', '{"current_working_directory": "cd"}'),
        (
            "walk",
            "mv",
            '{"error": "mv: path not allowed in destination. Provide only a file or directory name."}',
            '{"error": "walk: path not allowed in destination. Provide only a file or directory name."}',
        ),
        (
            "go",
            "cd",
            f"{ERROR_PREFIX}'list' object has no attribute 'rstrip'",
            f"{ERROR_PREFIX}'list' object has no attribute 'rstrip'",
        ),
        (
            "go",
            "cd",
            f"{ERROR_PREFIX}strptime() argument 1 must be str, not int",
            f"{ERROR_PREFIX}strptime() argument 1 must be str, not int",
        ),
        (
            "go",
            "cd",
            f"{ERROR_PREFIX}File 'folder' already exists in directory 'cd'.",
            f"{ERROR_PREFIX}File 'folder' already exists in directory 'cd'.",
        ),
        ("avg", "mean", '{"result": "mean"}', '{"result": "mean"}'),
        ("make", "touch", '{"error": "echo: cannot touch \'a\'"}', '{"error": "echo: cannot touch \'a\'"}'),
    ],
)
def test_rules(tool: str, method: str, before: str, after: str) -> None:
    assert reword(NAMES, tool, method, before) == after


def test_reword_is_identity_on_unchanged_names_and_returns_the_same_object() -> None:
    same = NameMap({"cd": ("cd", {"folder": "folder"})})
    text = '{"error": "cd: \'x\': No such file or directory"}'
    assert reword(same, "cd", "cd", text) is text
    plain = '{"matches": ["./cd"]}'
    assert reword(NAMES, "go", "cd", plain) is plain


# -- (c) a leak today's release had: the cd error names cd ------------------------------------


def test_cd_error_under_rename_tools_names_the_variant_tool() -> None:
    env = BFCLEnv(ood="rename_tools:opaque", ood_seed=0, call_format="python")
    env.reset(options={"task_id": "multi_turn_base_0"})
    assert env.task is not None
    name = variant_name(env.task, "cd")
    observation, _, _, _, info = env.step(f"[{name}(folder='no_such_folder')]")
    assert info["results"] == [f'{{"error": "{name}: \'no_such_folder\': No such file or directory"}}']
    assert not re.search(r"\bcd\b", observation)


def test_python_argument_errors_name_the_variant_tool_and_parameters() -> None:
    env = BFCLEnv(ood=OPAQUE, call_format="python")
    env.reset(options={"task_id": "multi_turn_base_0"})
    assert env.task is not None
    name = variant_name(env.task, "mv")
    source, destination = (variant_param(env.task, name, p) for p in ("source", "destination"))
    _, _, _, _, info = env.step(f"[{name}()]")
    assert info["results"] == [
        f"{ERROR_PREFIX}{name}() missing 2 required positional arguments: '{source}' and '{destination}'"
    ]


# -- (d) data is not rewritten ----------------------------------------------------------------


def test_file_content_naming_tools_comes_back_unchanged_from_cat() -> None:
    variant = make_variant(get_task("multi_turn_base_0"), OPAQUE, 0)
    session = Session.for_task(variant)
    touch, echo, cat = (variant_name(variant, n) for n in ("touch", "echo", "cat"))
    content = 'cat sort cd: mv {"error": "cd: x"} cd() missing 1 required positional argument: \'folder\''
    session.execute(Call(touch, (), {variant_param(variant, touch, "file_name"): "cd"}))
    session.execute(
        Call(
            echo,
            (),
            {variant_param(variant, echo, "content"): content, variant_param(variant, echo, "file_name"): "cd"},
        )
    )
    result = session.execute(Call(cat, (), {variant_param(variant, cat, "file_name"): "cd"}))
    canonical = Session.for_task(get_task("multi_turn_base_0"))
    canonical.execute(Call("touch", (), {"file_name": "cd"}))
    canonical.execute(Call("echo", (), {"content": content, "file_name": "cd"}))
    assert result.text == canonical.execute(Call("cat", (), {"file_name": "cd"})).text
    # a missing file called "cd": the command prefix is the variant's, the name the model gave stays
    missing = session.execute(Call(cat, (), {variant_param(variant, cat, "file_name"): "mv"})).text
    assert missing == f'{{"error": "{cat}: \'mv\': No such file or directory"}}'


# -- (b) verdict parity with the canonical episode ---------------------------------------------


def to_variant(variant: Task, call: Call) -> Call:
    """A canonical (keyword) call written with the variant's names."""
    assert variant.name_map is not None
    for name, (canonical, params) in variant.name_map.tools.items():
        if canonical == call.name:
            inverse = {target: key for key, target in params.items()}
            return Call(name, call.args, {inverse.get(k, k): v for k, v in call.kwargs.items()})
    return call


def _wrong(call: Call) -> Call | None:
    for key, value in call.kwargs.items():
        if isinstance(value, str):
            return Call(call.name, call.args, {**call.kwargs, key: "zz_no_such_value"})
    return None


def mutants(task: Task, rng: random.Random) -> list[tuple[str, list[list[list[Call]]]]]:
    """The ground truth and mutated copies of it, as canonical keyword calls by turn and step."""
    gt = [[keyword_call(c, task.involved_classes, task.release) for c in turn] for turn in task.ground_truth_calls]
    one_step = lambda turns: [[list(t)] if t else [] for t in turns]  # noqa: E731
    found = [("ground_truth", one_step(gt)), ("split_steps", [[[c] for c in turn] for turn in gt])]
    slots = [(t, i) for t, turn in enumerate(gt) for i in range(len(turn))]

    def replaced(t: int, i: int, new: list[Call]) -> list[list[Call]]:
        return [turn[:i] + new + turn[i + 1 :] if k == t else turn for k, turn in enumerate(gt)]

    if slots:
        t, i = rng.choice(slots)
        found.append(("drop", one_step(replaced(t, i, []))))
        t, i = rng.choice(slots)
        found.append(("duplicate", one_step(replaced(t, i, [gt[t][i], gt[t][i]]))))
        for kind, change in (("alter", alter_call), ("wrong_value", _wrong)):
            options = [(t, i) for t, i in slots if change(gt[t][i]) is not None]
            if options:
                t, i = rng.choice(options)
                found.append((kind, one_step(replaced(t, i, [change(gt[t][i])]))))  # type: ignore[list-item]
        options = [(t, i) for t, i in slots if gt[t][i].kwargs]
        if options:
            t, i = rng.choice(options)
            call = gt[t][i]
            first = next(iter(call.kwargs))
            found.append(
                (
                    "missing_argument",
                    one_step(
                        replaced(t, i, [Call(call.name, (), {k: v for k, v in call.kwargs.items() if k != first})])
                    ),
                )
            )
        t, i = rng.choice(slots)
        found.append(("extra_positional", one_step(replaced(t, i, [Call(gt[t][i].name, (1, 2, 3, 4, 5, 6, 7, 8))]))))
        t, i = rng.choice(slots)
        found.append(("error_then_call", one_step(replaced(t, i, [_wrong(gt[t][i]) or gt[t][i], gt[t][i]]))))
        t, _ = rng.choice(slots)
        found.append(("empty_turn", one_step([[] if k == t else turn for k, turn in enumerate(gt)])))
    multi = [t for t, turn in enumerate(gt) if len(turn) > 1]
    if multi:
        t = rng.choice(multi)
        found.append(("reorder", one_step([list(reversed(turn)) if k == t else turn for k, turn in enumerate(gt)])))
    found.append(("missing_turn", one_step(gt[:-1])))
    return found


def verdict_record(verdict: Any) -> tuple:
    return (
        verdict.passed,
        verdict.failure,
        verdict.failed_turn,
        tuple(
            (t.turn, t.checked, t.passed, t.failure, tuple(d.to_dict() for d in t.state_diff), len(t.missing_results))
            for t in verdict.turns
        ),
    )


def parity_problems(tasks: list[Task], spec: str, seed: int) -> tuple[list[tuple], int, set[tuple[str, Any]]]:
    rng = random.Random(seed)
    problems, compared, outcomes = [], 0, set()
    for task in tasks:
        variant = make_variant(task, spec, seed)
        for kind, turns in mutants(task, rng):
            canonical = verdict_record(check(task, turns))
            renamed = verdict_record(
                check(variant, [[[to_variant(variant, c) for c in step] for step in turn] for turn in turns])
            )
            compared += 1
            outcomes.add((kind, canonical[1]))
            if canonical != renamed:
                problems.append((task.id, kind, canonical, renamed))
    return problems, compared, outcomes


def test_verdicts_of_the_opaque_variant_equal_the_canonical_ones_on_all_800_tasks() -> None:
    start = time.perf_counter()
    problems, compared, outcomes = parity_problems(TASKS, OPAQUE, 0)
    print(f"{compared} verdict pairs compared in {time.perf_counter() - start:.1f} s")
    assert not problems, problems[:3]
    assert compared > 8000
    assert ("ground_truth", None) in outcomes
    assert {failure for _, failure in outcomes} >= {
        None,
        "state_mismatch",
        "response_mismatch",
        "empty_turn",
        "force_terminated",
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", ["rename_tools+rename_params", "rename_tools:camel+rename_params:synonym+shuffle_schema"]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_verdict_parity_for_other_styles_and_seeds(spec: str, seed: int) -> None:
    problems, compared, _ = parity_problems(TASKS, spec, seed)
    assert not problems, problems[:3]
    assert compared > 8000


@pytest.mark.slow
def test_verdict_parity_on_the_papers_release() -> None:
    problems, compared, _ = parity_problems(load_tasks(data_version="2025.10.2"), OPAQUE, 3)
    assert not problems, problems[:3]
    assert compared > 8000
