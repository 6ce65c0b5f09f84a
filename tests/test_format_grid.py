"""BFCL V4's format-sensitivity grid as multi-turn OOD format variants (ood_variants/format_grid.py).

Every official configuration string (read from the official distribution at run time) parses,
renders a system prompt byte-equal to bfcl-eval's own ``formulate_system_prompt`` from templates
byte-equal to the official ones, and lets the expert score 1.0 through the real environment in its
return format; the decoders agree with BFCL's single-turn AST decoder; a bad string is a one-line
error stating the grammar; ``eval --ood`` reports max-Δ and std across the configurations.
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import pytest

from envs._official import DataError, distribution
from evaluators.runner import RunConfig, episode_tasks, run_eval, run_meta, score_and_report
from evaluators.scoring import format_sensitivity, format_split, score_trajectory, spread
from ood_variants import format_grid as grid
from ood_variants.registry import make_variant, normalize_spec, parse_spec
from tests.oracle import require_official_module
from toolenv.calls import Call
from toolenv.data import get_task
from toolenv.env import BFCLEnv
from toolenv.executor import keyword_call
from toolenv.expert import expert_actions
from toolenv.formats import PromptStyle, get_codec, tool_specs
from toolenv.formats.python_list import PythonListCodec
from toolenv.inference import ChatModel

RELEASES = ("2026.3.23", "2025.10.2")
CONFIGS = grid.official_configs()
DEFAULT = "ret_fmt=python&tool_call_tag=False&func_doc_fmt=json&prompt_fmt=plaintext&style=classic"
#: eight tasks per category, from every API block (file system, vehicle, trading, travel)
TASK_IDS = tuple(
    f"multi_turn_{c}_{n}" for c in ("base", "miss_func", "miss_param", "long_context") for n in range(3, 200, 25)
)


def play_expert(env: BFCLEnv, task_id: str) -> float:
    """The expert's whole episode through the environment; its final reward."""
    env.reset(options={"task_id": task_id})
    assert env.task is not None
    for action in expert_actions(env.task, env.codec):
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return float(reward)
    raise AssertionError("the episode did not end")


def expert_calls(task_id: str) -> list[list[Call]]:
    task = get_task(task_id)
    return [[keyword_call(c, task.involved_classes, task.release) for c in turn] for turn in task.ground_truth_calls]


# -- the official configurations and grammar ----------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_the_official_grid_is_read_from_each_release_and_every_string_parses(release: str) -> None:
    configs = grid.official_configs(release)
    assert len(configs) == 26 and len(set(configs)) == 26 and DEFAULT in configs
    assert all(grid.normalize_config(text) == text for text in configs)  # already canonical
    assert grid.official_grammar(release) == grid.GRAMMAR
    full = {(c.ret_fmt, c.tool_call_tag, c.func_doc_fmt) for c in map(grid.parse_config, configs)}
    assert len(full) == 4 * 2 * 3  # every return format x tag x doc format, plus the two layout/wording ones


def test_every_configuration_is_a_spec_in_both_spellings_and_any_key_order() -> None:
    for text in CONFIGS:
        assert normalize_spec(text) == normalize_spec(f"{grid.TRANSFORM}:{text}") == text
    shuffled = "style=experimental&prompt_fmt=markdown&func_doc_fmt=xml&tool_call_tag=True&ret_fmt=json"
    assert normalize_spec(f"rename_tools:opaque+{shuffled}") == (
        "rename_tools:opaque+ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=markdown&style=experimental"
    )
    drawn = make_variant(get_task("multi_turn_base_0"), grid.TRANSFORM, seed=4)  # the bare name draws one
    assert drawn.format_options["call_format"] in CONFIGS
    assert drawn == make_variant(get_task("multi_turn_base_0"), grid.TRANSFORM, seed=4)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("ret_fmt=yaml&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=plaintext&style=classic", "ret_fmt='yaml'"),
        ("ret_fmt=json&tool_call_tag=true&func_doc_fmt=xml&prompt_fmt=plaintext&style=classic", "tool_call_tag='true'"),
        ("ret_fmt=json&tool_call_tag=True", "missing func_doc_fmt, prompt_fmt, style"),
        ("ret_fmt=json&ret_fmt=json", "ret_fmt given twice"),
        ("rename_tools+colour=red", "unknown key 'colour'"),
        (f"{grid.TRANSFORM}:ret_fmt=json&&style=classic", "'' is not key=value"),
        (f"{grid.TRANSFORM}:python", "'python' is not key=value"),
    ],
)
def test_a_bad_configuration_is_a_one_line_error_stating_the_grammar(spec: str, fragment: str) -> None:
    for build in (parse_spec, lambda text: BFCLEnv(ood=text)):
        with pytest.raises(ValueError) as info:
            build(spec)
        message = str(info.value)
        assert fragment in message and "\n" not in message
        assert message.endswith(f"grammar: {grid.grammar_text()}")
    assert grid.grammar_text() == (
        "ret_fmt=python|json|verbose_xml|concise_xml&tool_call_tag=True|False&func_doc_fmt=python|xml|json"
        "&prompt_fmt=plaintext|markdown&style=classic|experimental"
    )


def test_the_cli_lists_the_grid_as_specs_for_eval() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolenv.cli", "ood", "list", "--grid", "--compose", "rename_tools:opaque"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"rename_tools:opaque+{text}" for text in CONFIGS]


def test_the_cli_refuses_a_bad_configuration_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolenv.cli", "ood", "show", "--ood", "ret_fmt=toml"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "grammar: ret_fmt=python|json|verbose_xml|concise_xml" in done.stderr


class _Source:
    """A distribution whose sources lack the grid (as an older release's would)."""

    def read_text(self, relative: str) -> str:
        return "def something_else():\n    return []\n"


def test_a_release_without_the_grid_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    caches = (grid._function, grid.official_configs, grid.official_grammar, grid.templates)

    def missing(*args: Any) -> Any:
        raise DataError("the official source assigns no literal named 'PROMPT_STYLE_TEMPLATES'")

    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(grid, "distribution", lambda version: _Source())
    monkeypatch.setattr(grid, "official_literal", missing)
    try:
        for read in (grid.official_configs, grid.official_grammar, grid.templates):
            with pytest.raises(DataError) as info:
                read("2025.10.2")
            message = str(info.value)
            assert "\n" not in message and message.startswith("bfcl-eval==2025.10.2 has no format-sensitivity grid")
            assert "--data-version 2026.3.23" in message
    finally:
        monkeypatch.undo()
        for cache in caches:
            cache.cache_clear()


# -- prompts ----------------------------------------------------------------------------------


def test_the_templates_are_byte_equal_to_the_official_ones() -> None:
    """Read at run time from the distribution (never copied), equal to bfcl-eval's constants."""
    prompts = require_official_module("bfcl_eval.constants.default_prompts")
    texts = grid.templates()
    assert texts.output_formats == prompts.OUTPUT_FORMAT_MAPPING
    assert texts.param_types == prompts.PARAM_TYPE_MAPPING
    assert texts.styles == prompts.PROMPT_STYLE_TEMPLATES
    assert texts.layouts == prompts.PROMPT_TEMPLATE_MAPPING
    assert texts.tag() == ("<TOOLCALL>", "</TOOLCALL>")
    source = distribution().read_text(grid.PROMPTS_FILE)
    for style in texts.styles.values():  # each text is in the official file, as written there
        assert all(json.dumps(text) in source for text in style.values())
    for name in ("format_grid.py",):
        ours = (Path(grid.__file__).parent / name).read_text()
        assert texts.styles["classic"]["task"] not in ours and texts.output_formats["verbose_xml"] not in ours


def test_every_configuration_renders_the_prompt_bfcl_renders() -> None:
    """Differential: the assembly (official templates, our doc renderers) equals bfcl-eval's
    ``formulate_system_prompt`` byte for byte, for every configuration and several tasks."""
    utils = require_official_module("bfcl_eval.model_handler.utils")
    for task_id in TASK_IDS[::2]:
        tools = tool_specs(get_task(task_id).tool_docs())
        docs = grid.hinted_docs(tools)
        for text in CONFIGS:
            ours = get_codec(grid.register_codec(text)).system_prompt(tools)
            assert ours == utils.formulate_system_prompt(text, docs), (task_id, text)


def test_the_default_configuration_is_the_python_formats_prompt() -> None:
    tools = tool_specs(get_task("multi_turn_base_0").tool_docs())
    assert get_codec(grid.register_codec(DEFAULT)).system_prompt(tools) == PythonListCodec().system_prompt(tools)


def test_a_codec_survives_pickling_and_copying() -> None:
    codec = get_codec(grid.register_codec(CONFIGS[19]))
    again = pickle.loads(pickle.dumps(codec))
    assert type(again) is type(codec) and again.config == codec.config and copy.deepcopy(codec).name == CONFIGS[19]


def test_docs_style_composed_with_a_configuration_replaces_its_listing() -> None:
    variant = make_variant(
        get_task("multi_turn_base_0"),
        "yaml_docs+ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=plaintext&style=classic",
    )
    options = variant.format_options
    prompt = get_codec(options["call_format"], PromptStyle.from_options(options)).system_prompt(
        tool_specs(variant.tool_docs())
    )
    assert "functions in yaml format" in prompt and "- name: cd" in prompt and "<TOOLCALL>```json" in prompt


# -- the expert through the environment -------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_the_expert_scores_one_through_every_configuration(config: str) -> None:
    env = BFCLEnv(ood=config, task_ids=list(TASK_IDS))
    rewards = {task_id: play_expert(env, task_id) for task_id in TASK_IDS}
    assert rewards == dict.fromkeys(TASK_IDS, 1.0)
    assert env.codec.name == config and env.trajectory is not None and env.trajectory.meta["ood"] == config


def test_a_composed_variant_scores_one_and_rescoring_rebuilds_it() -> None:
    spec = "rename_tools:opaque+perturb_values+ret_fmt=verbose_xml&tool_call_tag=True&func_doc_fmt=python&prompt_fmt=plaintext&style=classic"
    env = BFCLEnv(ood=spec, ood_seed=2, task_ids=list(TASK_IDS))
    for task_id in TASK_IDS:
        assert play_expert(env, task_id) == 1.0
        assert env.trajectory is not None and score_trajectory(env.trajectory).verdict.passed


# -- decoding ---------------------------------------------------------------------------------


def test_the_decoders_agree_with_bfcls_ast_decoder_on_every_return_format() -> None:
    """BFCL's single-turn decoder (``default_decode_ast_prompting``) and ours read the expert's
    calls, in every return format with and without the tag, as the same calls."""
    utils = require_official_module("bfcl_eval.model_handler.utils")
    enums = require_official_module("bfcl_eval.constants.enums")
    for text in CONFIGS[:24]:
        config, codec = grid.parse_config(text), get_codec(grid.register_codec(text))
        for task_id in TASK_IDS:
            for calls in filter(None, expert_calls(task_id)):
                output = codec.render_calls(calls)
                official = utils.default_decode_ast_prompting(
                    output, enums.ReturnFormat(config.ret_fmt), config.tool_call_tag
                )
                parsed = codec.parse(output)
                assert parsed.status == "calls" and list(parsed.calls) == calls, (text, task_id)
                assert [{c.name: dict(c.kwargs)} for c in parsed.calls] == _plain(official), (text, task_id)


def _plain(decoded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(decoded))


def codec_of(ret_fmt: str, tag: bool = False) -> Any:
    text = f"ret_fmt={ret_fmt}&tool_call_tag={tag}&func_doc_fmt=json&prompt_fmt=plaintext&style=classic"
    return get_codec(grid.register_codec(text))


@pytest.mark.parametrize(
    ("ret_fmt", "tag", "output", "calls"),
    [
        (
            "json",
            False,
            'Sure.\n```json\n[{"function": "cd", "parameters": {"folder": "a"}}]\n```',
            [Call("cd", (), {"folder": "a"})],
        ),
        ("json", False, '{"function": "ls", "parameters": {"a": true}}', [Call("ls", (), {"a": True})]),
        ("json", True, 'x <TOOLCALL>[{"function": "pwd", "parameters": {}}]</TOOLCALL>', [Call("pwd")]),
        (
            "concise_xml",
            False,
            '<functions>\n  <function name="mv">\n    <param name="source" type="string"> a &amp; b.txt </param>\n'
            '    <param name="n" type="integer">3</param><param name="x" type="array">[1, "b"]</param>\n'
            "  </function>\n</functions>",
            [Call("mv", (), {"source": "a & b.txt", "n": 3, "x": [1, "b"]})],
        ),
        (
            "verbose_xml",
            False,
            '<functions><function name="f"><params><param name="a" value="True" type="boolean"/>'
            '<param name="b" value="1.5" type="float"/><param name="c" value="hi" type="weird"/></params></function></functions>',
            [Call("f", (), {"a": True, "b": 1.5, "c": "hi"})],
        ),
        ("python", True, "<TOOLCALL>cd(folder='a'), ls()</TOOLCALL>", [Call("cd", (), {"folder": "a"}), Call("ls")]),
    ],
)
def test_model_like_outputs_decode_as_bfcl_reads_them(ret_fmt: str, tag: bool, output: str, calls: list[Call]) -> None:
    parsed = codec_of(ret_fmt, tag).parse(output)
    assert parsed.attempted and list(parsed.calls) == calls and not parsed.errors


@pytest.mark.parametrize(
    ("ret_fmt", "tag", "output"),
    [
        ("python", True, "[cd(folder='a')]"),  # the tag is asked for and missing
        ("json", False, '[{"name": "cd", "arguments": {}}]'),  # another format's keys
        ("json", False, "I moved the file."),
        ("concise_xml", False, '<function name="cd"><param name="folder">a</param></function>'),  # no <functions>
        (
            "concise_xml",
            False,
            '<functions><function name="f"><param name="n" type="integer">x</param></function></functions>',
        ),
        ("verbose_xml", False, '<functions><!DOCTYPE a [<!ENTITY e "x">]><function name="f"/></functions>'),
        ("verbose_xml", False, "<functions><function name='f'><params></functions>"),
    ],
)
def test_undecodable_outputs_are_plain_replies_that_end_the_turn(ret_fmt: str, tag: bool, output: str) -> None:
    parsed = codec_of(ret_fmt, tag).parse(output)
    assert parsed.status == "text" and not parsed.calls


def test_an_empty_list_ends_the_turn_and_a_nested_call_cannot_run() -> None:
    assert codec_of("json").parse("[]").status == "text"
    nested = codec_of("json").parse('[{"function": "f", "parameters": {"a": {"g": {"b": 1}}}}]')
    assert nested.status == "invalid" and nested.unrunnable == ("f(a=g(b=1))",)


# -- the report's numbers ---------------------------------------------------------------------


def test_max_delta_and_std_are_bfcls_numbers_on_a_hand_computed_example() -> None:
    assert spread([1.0, 0.75, 0.5]) == {"max_delta": 0.5, "std": 0.25}  # mean .75, sample variance .0625
    assert spread([0.4]) == {"max_delta": 0.0, "std": 0.0}
    assert format_split(f"rename_tools+{DEFAULT}") == ("rename_tools", DEFAULT)
    assert format_split(f"{grid.TRANSFORM}:{DEFAULT}") == ("", DEFAULT)
    assert format_split("rename_tools+python_list_format") is None
    rows = [
        {"spec": "a=1", "overall": 0.0, "categories": {}},
        {"spec": f"x+{DEFAULT}", "overall": 0.9, "categories": {"base": {"accuracy": 0.9}}},  # alone in its group
        *(
            {"spec": f"ret_fmt={fmt}", "overall": overall, "categories": {"base": {"accuracy": base}}}
            for fmt, overall, base in (("python", 0.6, 0.5), ("json", 0.8, 1.0), ("concise_xml", 0.4, 0.0))
        ),
    ]
    [group] = format_sensitivity(rows)
    assert group["spec"] == "" and group["formats"] == ["ret_fmt=python", "ret_fmt=json", "ret_fmt=concise_xml"]
    assert group["overall"]["max_delta"] == pytest.approx(0.4) and group["overall"]["std"] == pytest.approx(0.2)
    assert group["overall"]["best"] == "ret_fmt=json" and group["overall"]["worst"] == "ret_fmt=concise_xml"
    assert group["categories"]["base"] == {"max_delta": 1.0, "std": pytest.approx(0.5), "formats": 3}


class FailingExpert(ChatModel):
    """The expert of whichever task a conversation belongs to, except for the (spec, task)
    pairs in ``fail``, which it answers with a plain reply (so each format has its own score)."""

    def __init__(self, tasks: Sequence[Any], fail: set[tuple[str, str]]) -> None:
        self.name = "failing-expert"
        self.fail = fail
        self.by_opening: dict[str, tuple[Any, Any]] = {}
        for task in tasks:
            options = task.format_options
            codec = get_codec(options.get("call_format", "hermes"), PromptStyle.from_options(options))
            opening = codec.opening_messages(tool_specs(task.tool_docs()), [m.to_dict() for m in task.turns[0]])
            self.by_opening[json.dumps(opening[:2])] = (task, codec)

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Any = None) -> list[Any]:
        return [self._next(messages) for messages in conversations]

    def _next(self, messages: Sequence[dict[str, Any]]) -> Any:
        task, codec = self.by_opening[json.dumps([{"role": m["role"], "content": m["content"]} for m in messages[:2]])]
        if (task.ood_spec, task.id) in self.fail:
            return "I cannot help with that."
        actions = expert_actions(task, codec)
        done = sum(1 for m in messages if m["role"] == "assistant")
        return actions[done] if done < len(actions) else "done"


def test_eval_with_several_configurations_reports_max_delta_and_std(tmp_path: Path) -> None:
    specs = (DEFAULT, CONFIGS[7], CONFIGS[-1])
    config = RunConfig(model="expert", categories=("base", "miss_func"), limit=4, batch_size=4, ood=specs)
    tasks = episode_tasks(config)
    base_ids = [t.id for t in tasks if not t.ood_spec and t.category == "base"]
    func_ids = [t.id for t in tasks if not t.ood_spec and t.category == "miss_func"]
    assert len(base_ids) == len(func_ids) == 2
    # by hand: overall 1.0, 0.75, 0.5 -> max-delta 0.5, std 0.25; base 1, .5, .5 and miss_func
    # 1, 1, .5 -> max-delta 0.5, std sqrt(1/12) each
    fail = {(specs[1], base_ids[0]), (specs[2], base_ids[1]), (specs[2], func_ids[0])}
    out = tmp_path / "run"
    trajectories = run_eval(FailingExpert(tasks, fail), config, out, progress=False)
    paths = score_and_report(out, trajectories, run_meta(out))
    [group] = json.loads(paths["json"].read_text())["ood"]["format_sensitivity"]
    assert group["spec"] == "" and group["formats"] == list(specs)
    assert group["overall"]["max_delta"] == pytest.approx(0.5) and group["overall"]["std"] == pytest.approx(0.25)
    assert group["overall"]["best"] == DEFAULT and group["overall"]["worst"] == specs[2]
    for category in ("base", "miss_func"):
        assert group["categories"][category]["max_delta"] == pytest.approx(0.5)
        assert group["categories"][category]["std"] == pytest.approx((1 / 12) ** 0.5)
    markdown = paths["markdown"].read_text()
    assert "## Format sensitivity (3 BFCL V4 format configurations)" in markdown
    assert (
        "| max-Δ (points) | 50.00 | 50.00 | 50.00 |" in markdown
        and "| std (points) | 25.00 | 28.87 | 28.87 |" in markdown
    )
    page = paths["html"].read_text()
    assert "class='format-sensitivity'" in page and "<td>max-Δ (points)</td><td>50.00</td>" in page


def test_a_fresh_process_finds_a_grid_codec_by_its_configuration_string() -> None:
    """An exported task file names its call format; the core's codec lookup finds a grid
    configuration without any variant built first (through the variant builder's entry point)."""
    import subprocess
    import sys

    code = (
        "from toolenv.formats import CODECS, get_codec\n"
        "name = 'ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=plaintext&style=classic'\n"
        "assert name not in CODECS\n"
        "print(get_codec(name).name == name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]
