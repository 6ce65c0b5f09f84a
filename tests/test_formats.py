"""Call formats: render(calls) then parse gives the same calls, for every format; garbage never
raises; plain replies are not tool steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_calls import identifiers
from toolenv.calls import Call
from toolenv.formats import CODECS, get_codec

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=40),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)
keyword_calls = st.builds(
    Call, identifiers, st.just(()), st.dictionaries(identifiers, json_values, max_size=4)
)


@pytest.mark.parametrize("name", list(CODECS))
@given(calls=st.lists(keyword_calls, min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_render_then_parse_round_trips(name: str, calls: list[Call]) -> None:
    codec = get_codec(name)
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
    codec = get_codec("python")
    assert codec.parse("```\n[cd(folder='a')]\n```").calls == (Call("cd", (), {"folder": "a"}),)
    assert codec.parse("cd(folder='a'), ls()").calls == (Call("cd", (), {"folder": "a"}), Call("ls"))
    assert codec.parse("sort('a.txt')").calls == (Call("sort", ("a.txt",), {}),)  # BFCL would drop it
    assert not codec.parse("[]").attempted
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
    utils = pytest.importorskip("bfcl_eval.model_handler.utils")
    from toolenv.data import get_task
    from toolenv.formats.python_list import bfcl_default_system_prompt, PYTHON_HINT
    from bfcl_eval.constants.default_prompts import DEFAULT_SYSTEM_PROMPT_FORMAT

    for task_id in ["multi_turn_base_0", "multi_turn_miss_func_120", "multi_turn_long_context_175"]:
        docs = get_task(task_id).tool_docs()
        hinted = [dict(d, description=d["description"] + PYTHON_HINT) for d in docs]
        assert bfcl_default_system_prompt(docs) == utils.formulate_system_prompt(DEFAULT_SYSTEM_PROMPT_FORMAT, hinted)
