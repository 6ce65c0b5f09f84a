"""The call parser: literal-only python calls, round trips, and refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolenv.calls import MAX_CALL_TEXT, Call, CallSyntaxError, parse_python_call, parse_python_calls
from toolenv.data import load_tasks

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda s: (
        s
        not in {
            "None",
            "True",
            "False",
            "and",
            "or",
            "not",
            "if",
            "else",
            "in",
            "is",
            "for",
            "lambda",
            "def",
            "class",
            "return",
            "yield",
            "from",
            "import",
            "as",
            "with",
            "while",
            "try",
            "except",
            "finally",
            "raise",
            "pass",
            "break",
            "continue",
            "del",
            "global",
            "nonlocal",
            "assert",
            "async",
            "await",
            "elif",
        }
    )
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.floats(allow_nan=False, allow_infinity=False),
)
literals = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(
    name=identifiers,
    args=st.lists(literals, max_size=3).map(tuple),
    kwargs=st.dictionaries(identifiers, literals, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_round_trip_of_rendered_calls(name: str, args: tuple, kwargs: dict) -> None:
    call = Call(name, args, kwargs)
    assert parse_python_call(call.to_python()) == call
    assert parse_python_calls(f"[{call.to_python()}, {call.to_python()}]") == [call, call]


def test_every_ground_truth_call_parses_and_renders_back() -> None:
    count = 0
    for task in load_tasks():
        for turn in task.ground_truth:
            for text in turn:
                call = parse_python_call(text)
                assert parse_python_call(call.to_python()) == call
                count += 1
    assert count == 1142 + 1140 + 1140 + 1203


def test_positional_and_keyword_arguments() -> None:
    call = parse_python_call("sort('final_report.pdf')")
    assert call == Call("sort", ("final_report.pdf",), {})
    call = parse_python_call("f(1, -2.5, x=[1, {'a': (2, None)}], y=True)")
    assert call.args == (1, -2.5)
    assert call.kwargs == {"x": [1, {"a": (2, None)}], "y": True}


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "os.system('true')",
        "cd.__class__(1)",
        "f()()",
        "f(x=g())",
        "f(x=a)",
        "f(x=1+1)",
        "f(x=lambda: 1)",
        "f(x=[i for i in range(3)])",
        "f(*[1])",
        "f(**{'a': 1})",
        "f(x={**{}})",
        "f(x=b'bytes')",
        "f(x=1j)",
        "f(x=...)",
        "f(x=1, x=2)",
        "f(x={[1]: 2})",
        "[f(), 1]",
        "f(",
        "",
        "1",
        "f(x=(yield))",
        "f(x=not True)",
    ],
)
def test_non_literal_or_malformed_calls_are_refused(text: str) -> None:
    with pytest.raises(CallSyntaxError):
        parse_python_calls(text)


def test_size_and_depth_limits() -> None:
    with pytest.raises(CallSyntaxError, match="longer than"):
        parse_python_call("f(x='" + "a" * MAX_CALL_TEXT + "')")
    with pytest.raises(CallSyntaxError):
        parse_python_call("f(x=" + "[" * 5000 + "]" * 5000 + ")")
    with pytest.raises(CallSyntaxError):
        parse_python_call("f(x=" + "[" * 80 + "]" * 80 + ")")
    with pytest.raises(CallSyntaxError):
        parse_python_call("f(x=" + "9" * 10000 + ")")
    assert parse_python_call("f(x=" + "[" * 30 + "]" * 30 + ")").name == "f"


def test_special_floats_survive_the_round_trip() -> None:
    call = parse_python_call("f(x=-0.0, y=1e308)")
    assert math.copysign(1, call.kwargs["x"]) == -1 and call.kwargs["y"] == 1e308


def test_static_payloads_stringify_exactly_like_lists() -> None:
    import json

    from envs.base import StaticPayload
    from toolenv.executor import stringify

    payload = StaticPayload([1.5, "é", None, {"a": [1]}] * 50)
    value = {"price": 1.0, "MA(5)": payload, "name": "x\u2019"}
    as_lists = {"price": 1.0, "MA(5)": list(payload), "name": "x\u2019"}
    assert stringify(value) == stringify(value) == json.dumps(as_lists)
    assert stringify({1: payload}) == json.dumps({1: list(payload)})
