"""Call formats: render(calls) then parse gives the same calls, for every format; garbage never
raises; plain replies are not tool steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracle import require_official_module
from tests.test_calls import identifiers
from toolenv.calls import Call
from toolenv.formats import CODECS, get_codec

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=40),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)
keyword_calls = st.builds(Call, identifiers, st.just(()), st.dictionaries(identifiers, json_values, max_size=4))


@pytest.mark.parametrize("name", list(CODECS))
@given(calls=st.lists(keyword_calls, min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_render_then_parse_round_trips(name: str, calls: list[Call]) -> None:
    # keep_positional: the literal decoder; the python format's default (BFCL's own decoder,
    # which reads a dict of dicts as a nested call) is tested against the official one below
    codec = get_codec(name, keep_positional=True)
    parsed = codec.parse(codec.render_calls(calls))
    assert parsed.attempted and not parsed.errors
    assert list(parsed.calls) == calls
    assert parsed.status == "calls"


@pytest.mark.parametrize("name", list(CODECS))
@given(text=st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_arbitrary_text_never_raises(name: str, text: str) -> None:
    result = get_codec(name).parse(text)
    assert result.status in {"calls", "partial", "invalid", "text"}


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize("reply", ["Done! The file was moved.", "", "   ", "I cannot do that."])
def test_plain_replies_end_the_turn(name: str, reply: str) -> None:
    assert not get_codec(name).parse(reply).attempted


def test_hermes_follows_the_paper_parser() -> None:
    codec = get_codec("hermes")
    unclosed = codec.parse('<tool_call>\n{"name": "ls", "arguments": {}}')
    assert not unclosed.attempted  # no closing tag: a plain reply
    mixed = codec.parse('<tool_call>{"name": "ls", "arguments": {}}</tool_call><tool_call>{"k"="v"}</tool_call> user')
    assert mixed.status == "partial" and [c.name for c in mixed.calls] == ["ls"] and mixed.outside_text == "user"
    collapsed = codec.parse("<tool_call></tool_call>")
    assert collapsed.status == "invalid"
    stringly = codec.parse('<tool_call>{"name": "cd", "arguments": "{\\"folder\\": \\"a\\"}"}</tool_call>')
    assert stringly.calls == (Call("cd", (), {"folder": "a"}),)


def test_python_list_follows_bfcl_decoding() -> None:
    for codec in (get_codec("python"), get_codec("python", keep_positional=True)):
        assert codec.parse("```\n[cd(folder='a')]\n```").calls == (Call("cd", (), {"folder": "a"}),)
        assert codec.parse("cd(folder='a'), ls()").calls == (Call("cd", (), {"folder": "a"}), Call("ls"))
        assert not codec.parse("[]").attempted
    # by default as BFCL decodes: positional arguments dropped (and counted), arithmetic folded,
    # and a callee read through attributes (which the executor then refuses: an error result)
    bfcl = get_codec("python").parse("sort('a.txt')")
    assert bfcl.calls == (Call("sort", (), {}),) and bfcl.positional_dropped == 1
    assert get_codec("python").parse("[f(x=1+1)]").calls == (Call("f", (), {"x": 2}),)
    hostile = get_codec("python").parse("[__import__('os').system('x')]")
    assert hostile.attempted and hostile.calls == (Call("system", (), {}),)
    # keep_positional: the literal-only decoder of earlier releases
    codec = get_codec("python", keep_positional=True)
    assert codec.parse("sort('a.txt')").calls == (Call("sort", ("a.txt",), {}),)
    assert not codec.parse("[__import__('os').system('x')]").attempted
    assert not codec.parse("[f(x=1+1)]").attempted


def test_openai_accepts_dicts_and_json_text() -> None:
    codec = get_codec("openai")
    message = codec.render_calls([Call("cd", (), {"folder": "a"})])
    assert codec.parse(message).calls == codec.parse(__import__("json").dumps(message)).calls
    assert not codec.parse({"role": "assistant", "content": "hi"}).attempted
    bad = codec.parse({"tool_calls": [{"function": {"name": "cd", "arguments": "{not json"}}]})
    assert bad.status == "invalid"


def test_xml_types_and_escaping() -> None:
    codec = get_codec("xml")
    text = '<function name="f"><param name="a" type="integer">3</param><param name="b">x &lt; y</param></function>'
    assert codec.parse(text).calls == (Call("f", (), {"a": 3, "b": "x < y"}),)
    assert codec.parse('<function name="f"><param name="a" type="integer">x</param></function>').status == "invalid"


def test_python_prompt_is_bfcl_default_prompt_byte_for_byte() -> None:
    """Differential: our assembly from the official templates equals BFCL's formulate_system_prompt."""
    utils = require_official_module("bfcl_eval.model_handler.utils")
    from bfcl_eval.constants.default_prompts import DEFAULT_SYSTEM_PROMPT_FORMAT

    from toolenv.data import get_task
    from toolenv.formats.python_list import PYTHON_HINT, bfcl_default_system_prompt

    for task_id in ["multi_turn_base_0", "multi_turn_miss_func_120", "multi_turn_long_context_175"]:
        docs = get_task(task_id).tool_docs()
        hinted = [dict(d, description=d["description"] + PYTHON_HINT) for d in docs]
        assert bfcl_default_system_prompt(docs) == utils.formulate_system_prompt(DEFAULT_SYSTEM_PROMPT_FORMAT, hinted)


# -- issue #12, defect 1: OpenAI-style message dicts in every format -----------------------------

TOOL_CALLS_MESSAGE = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "cd", "arguments": '{"folder": "document"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "ls", "arguments": {"a": True}}},  # an object
    ],
}


@pytest.mark.parametrize("name", list(CODECS))
def test_every_format_decodes_a_tool_calls_dict_as_the_openai_codec_does(name: str) -> None:
    parsed = get_codec(name).parse(TOOL_CALLS_MESSAGE)
    assert parsed == get_codec("openai").parse(TOOL_CALLS_MESSAGE)
    assert parsed.status == "calls" and parsed.outside_text == ""
    assert parsed.calls == (Call("cd", (), {"folder": "document"}), Call("ls", (), {"a": True}))
    assert parsed.call_ids == ("call_a", "call_b")
    # text beside the calls is outside text, never searched for more calls (no double runs)
    echoed = dict(TOOL_CALLS_MESSAGE, content=get_codec(name).render_calls([Call("pwd")]) if name != "openai" else "ok")
    again = get_codec(name).parse(echoed)
    assert again.calls == parsed.calls and again.outside_text


def _circular() -> dict:
    entry: dict = {"id": "c", "function": {"name": "ls"}}  # no arguments, and unprintable as JSON
    entry["self"] = entry
    return entry


MALFORMED_TOOL_CALLS = [
    ("not a list", "ls()", "'tool_calls' must be a list"),
    ("not a list (dict)", {"function": {"name": "ls", "arguments": "{}"}}, "'tool_calls' must be a list"),
    ("entry not an object", ["ls"], "must be an object"),
    ("no function", [{"id": "x", "type": "function"}], "needs a 'function' object"),
    ("function not an object", [{"function": "ls"}], "needs a 'function' object"),
    ("missing name", [{"function": {"arguments": "{}"}}], "'name' must be a function name"),
    ("bad name", [{"function": {"name": "rm -rf", "arguments": "{}"}}], "'name' must be a function name"),
    ("arguments not JSON", [{"function": {"name": "cd", "arguments": "{folder: a}"}}], ""),
    ("arguments a JSON list", [{"function": {"name": "cd", "arguments": "[1, 2]"}}], "must be a JSON object"),
    ("arguments a number", [{"function": {"name": "cd", "arguments": 3}}], "must be a JSON object"),
    ("missing arguments", [{"function": {"name": "cd"}}], "missing 'arguments'"),
    ("deep arguments", [{"function": {"name": "cd", "arguments": "[" * 100_000 + "]" * 100_000}}], ""),
    ("circular entry", [_circular()], "missing 'arguments'"),
]


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize(
    ("case", "tool_calls", "message"), MALFORMED_TOOL_CALLS, ids=[c[0] for c in MALFORMED_TOOL_CALLS]
)
def test_malformed_tool_calls_are_error_results_in_every_format(name: str, case: str, tool_calls, message: str) -> None:
    parsed = get_codec(name).parse({"role": "assistant", "content": "x", "tool_calls": tool_calls})
    assert parsed.attempted and parsed.status == "invalid" and not parsed.calls
    assert len(parsed.errors) == 1 and message in parsed.errors[0]
    assert parsed.outside_text == "x"
    mixed = get_codec(name).parse({"tool_calls": [TOOL_CALLS_MESSAGE["tool_calls"][0], {"id": "bad"}]})
    assert mixed.status == "partial" and mixed.calls == (Call("cd", (), {"folder": "document"}),)
    assert mixed.call_ids == ("call_a", "bad")  # each result answers its own entry: calls, then errors


@pytest.mark.parametrize("name", list(CODECS))
def test_a_dict_without_tool_calls_is_read_as_its_content(name: str) -> None:
    codec = get_codec(name)
    for absent in ({}, {"tool_calls": None}, {"tool_calls": []}):
        assert codec.parse({"role": "assistant", "content": "All done.", **absent}) == codec.parse("All done.")
        assert not codec.parse({"role": "assistant", "content": None, **absent}).attempted
    rendered = codec.render_calls([Call("cd", (), {"folder": "a"})])
    if name == "openai":  # calls travel in tool_calls only: content is a reply, whatever it says
        assert not codec.parse({"role": "assistant", "content": __import__("json").dumps(rendered)}).attempted
    else:  # a server without a tool parser: the calls are in the content text
        assert codec.parse({"role": "assistant", "content": rendered}).calls == (Call("cd", (), {"folder": "a"}),)


# -- the python format decodes as BFCL's prompting decoder does (differential) -----------------

_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.just(...),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 9)), inner, max_size=3),
    ),
    max_leaves=8,
)
_exprs = st.one_of(
    _values.map(repr),
    st.sampled_from(
        [
            "docs",
            "x.y",
            "-x",
            "+1",
            "not True",
            "~2",
            "1+2*3",
            "'ab'*2",
            "2**10",
            "7//2",
            "1/0",
            "len('x')+1",
            "g(1)",
            "g(a=1)",
            "g(a=1, b=h(c=2))",
            "z[0]",
            "z[1:2]",
            "{1, 2}",
            "f'{x}'",
            "lambda: 1",
            "1 < 2",
            "a and b",
            "[x for x in y]",
            "{}",
            "{'k': {}}",
            "{'f': {'a': 1}}",
            "*a",
            "(1)",
            "-(-1)",
            "-'s'",
            "...",
            "b'x'",
            "1j",
            "None",
        ]
    ),
)
_args = st.lists(st.tuples(st.one_of(st.none(), identifiers), _exprs), max_size=4)


def _call_text(name: str, args: list[tuple[str | None, str]]) -> str:
    seen: set[str] = set()
    parts = []
    for key, expr in args:
        if key is None:
            parts.append(expr)
        elif key not in seen:
            seen.add(key)
            parts.append(f"{key}={expr}")
    positional = [p for p in parts if "=" not in p.split("(")[0]]
    keywords = [p for p in parts if p not in positional]
    return f"{name}({', '.join(positional + keywords)})"


_steps = st.builds(
    lambda calls, wrap: wrap.format(", ".join(_call_text(n, a) for n, a in calls)),
    st.lists(st.tuples(st.sampled_from(["cd", "ls", "a.b.f", "echo"]), _args), max_size=3),
    st.sampled_from(["[{}]", "{}", "```[{}]```", "  [{}]\n", "'[{}]'", "({})", "[{}", "{}]", "I will call [{}]"]),
)


@given(step=st.one_of(_steps, st.text(max_size=60)))
@settings(max_examples=600, deadline=None)
def test_python_format_decodes_as_bfcls_prompting_decoder(step: str) -> None:
    """Differential, against bfcl-eval's default_decode_execute_prompting: the same execution
    strings, or a failure on both sides. The one documented exception: BFCL evaluates
    arithmetic with names or calls in it (``len('x')+1``); toolenv evaluates nothing."""
    from toolenv.formats.bfcl_decode import BFCLDecodeError, decode_prompting

    utils = require_official_module("bfcl_eval.model_handler.utils")
    try:
        official = utils.default_decode_execute_prompting(step)
    except Exception:  # noqa: BLE001 - any failure of the official decoder skips the step
        official = None
    try:
        ours = list(decode_prompting(step).strings)
    except BFCLDecodeError:
        ours = None
    if official is not None and ours is None and ("len(" in step or "lambda" in step):
        return  # BFCL eval()s these; toolenv refuses them (see toolenv.formats.bfcl_decode)
    assert ours == official, (step, official, ours)
