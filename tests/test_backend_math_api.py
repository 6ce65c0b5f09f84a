"""MathAPI: result reprs, error paths and hostile-input guards, compared with the official class."""

from __future__ import annotations

import decimal
import importlib
import sys
import time
from typing import Any, Iterator

import mpmath
import pytest

from envs.math_api import MathAPI
from tests.oracle import require_official
from toolenv.executor import stringify

OFFICIAL_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code.math_api"


@pytest.fixture()
def process_globals() -> Iterator[None]:
    """The official class changes process globals (mpmath.mp.dps, the decimal context, and,
    through an mpmath bug, the int/str digit limit): put them back after each test."""
    saved = (mpmath.mp.dps, decimal.getcontext().prec, sys.get_int_max_str_digits())
    yield
    mpmath.mp.dps, decimal.getcontext().prec = saved[:2]
    sys.set_int_max_str_digits(saved[2])


def official() -> Any:
    require_official()
    return importlib.import_module(OFFICIAL_MODULE).MathAPI()


def outcome(instance: Any, name: str, *args: Any, **kwargs: Any) -> str:
    try:
        return stringify(getattr(instance, name)(*args, **kwargs))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def same(name: str, *args: Any, **kwargs: Any) -> str:
    ours = outcome(MathAPI(), name, *args, **kwargs)
    assert ours == outcome(official(), name, *args, **kwargs), (name, args, kwargs)
    return ours


CASES = [
    ("logarithm", (20, 10, 2)),
    ("logarithm", (980.0, 20, 10)),
    ("logarithm", (3287.0, 6.0, 4)),
    ("logarithm", (-8, 2, 6)),
    ("logarithm", (0, 10, 5)),
    ("logarithm", (10, 1, 5)),
    ("logarithm", (10, 2, "x")),
    ("logarithm", ("10", "2.5", "7")),
    ("logarithm", ("abc", 2, 5)),
    ("logarithm", (10, [2], 5)),
    ("logarithm", (10, 2, 2.7)),
    ("logarithm", (10, 2, -3)),
    ("logarithm", (10, 2, None)),
    ("logarithm", (10, 2, 1e999)),
    ("logarithm", ("2+3j", "1/3", 12)),
    ("logarithm", (10, 2, 300)),
    ("square_root", (2, 10)),
    ("square_root", (53.3, 30)),
    ("square_root", (16, 1)),
    ("square_root", (-1, 5)),
    ("square_root", (2, 2.5)),
    ("square_root", (2, 0)),
    ("square_root", (2, 10**19)),
    ("square_root", ("4", 5)),
    ("square_root", (1e999, 5)),
    ("square_root", (-0.0, 5)),
    ("square_root", (True, True)),
    ("mean", ([1, 2, 4],)),
    ("mean", ([],)),
    ("mean", (["a"],)),
    ("mean", (5,)),
    ("mean", ({1: 2},)),
    ("standard_deviation", ([1, 2, 4],)),
    ("standard_deviation", ([1e308, -1e308],)),
    ("standard_deviation", ("ab",)),
    ("min_value", ([3, 1.5],)),
    ("max_value", ("zx",)),
    ("sum_values", ([1, 2.5],)),
    ("sum_values", ([[1]],)),
    ("si_unit_conversion", (1, "km", "m")),
    ("si_unit_conversion", (3, "m", "um")),
    ("si_unit_conversion", (2, "nm", "km")),
    ("si_unit_conversion", ("1", "km", "m")),
    ("si_unit_conversion", (1, "km", "mi")),
    ("si_unit_conversion", (1, ["km"], "m")),
    ("si_unit_conversion", (10**400, "km", "nm")),
    ("imperial_si_conversion", (100, "celsius", "fahrenheit")),
    ("imperial_si_conversion", (212, "fahrenheit", "celsius")),
    ("imperial_si_conversion", (5, "x", "x")),
    ("imperial_si_conversion", (5, "kg", "lb")),
    ("imperial_si_conversion", (5, "kg", "m")),
    ("imperial_si_conversion", (10**400, "kg", "lb")),
    ("add", (1, 2)),
    ("add", ("a", "b")),
    ("add", (1, "b")),
    ("subtract", (1.5, True)),
    ("multiply", ("a", 2)),
    ("multiply", (2, 2.5)),
    ("divide", (1, 0)),
    ("divide", (1, 3)),
    ("divide", ("a", 2)),
    ("divide", (10**400, 1)),
    ("power", (2, 10)),
    ("power", (2, -2)),
    ("power", (-8, 0.5)),
    ("power", ("a", 2)),
    ("power", (0, -1)),
    ("power", (2.0, 5000)),
    ("power", (10, 5000)),
    ("percentage", (1, 3)),
    ("percentage", (1, 0)),
    ("percentage", ("1", 3)),
    ("absolute_value", (-2,)),
    ("absolute_value", ("a",)),
    ("round_number", (2.675, 2)),
    ("round_number", (25, -1)),
    ("round_number", (1.5,)),
    ("round_number", (1.5, None)),
    ("round_number", (1.5, 2.0)),
    ("round_number", ("a", 2)),
    ("round_number", (True, -1)),
    ("round_number", (-(10**30), -40)),
    ("round_number", (5 * 10**40, -41)),
    ("round_number", (1e300, -400)),
]


@pytest.mark.parametrize("name,args", CASES, ids=[f"{n}{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_official(process_globals: None, name: str, args: tuple) -> None:
    same(name, *args)


def test_result_reprs_and_no_process_side_effects(process_globals: None) -> None:
    before = (mpmath.mp.dps, decimal.getcontext().prec, sys.get_int_max_str_digits())
    math_api = MathAPI()
    assert stringify(math_api.logarithm(20, 10, 2)) == "{'result': mpf('1.3027')}"  # dps + 3 digits
    assert stringify(math_api.square_root(2, 5)) == "{'result': Decimal('1.4142')}"
    math_api.logarithm("abc", 2, 5)  # mpmath alone would leave the digit limit lifted
    math_api.logarithm(2, 3, 40)
    assert (mpmath.mp.dps, decimal.getcontext().prec, sys.get_int_max_str_digits()) == before
    # Each call works at its own precision, whatever an earlier call used.
    first = math_api.logarithm(2, 3, 30)["result"]
    text = repr(first)
    math_api.logarithm(2, 3, 4)
    assert len(text) > 30 and MathAPI().logarithm(2, 3, 30)["result"] == first


def test_wrong_arity_messages_name_the_class() -> None:
    with pytest.raises(TypeError, match=r"MathAPI\.add\(\) missing 1 required positional argument: 'b'"):
        MathAPI().add(1)  # type: ignore[call-arg]


HOSTILE = [
    ("logarithm", (10, 2, 10**9)),
    ("logarithm", (10, 2, 1e300)),
    ("logarithm", ("1e" + "9" * 200, 2, 5)),
    ("logarithm", ("1" * 5000 + "x", 2, 5)),
    ("logarithm", (2, "(" + "1" * 3000 + "j", 5)),
    ("square_root", (2, 10**9)),
    ("square_root", (int("f" * 200_000, 16), 5)),
    ("power", (10, 10**9)),
    ("power", (3, 2**80)),
    ("power", (-7, 10**7)),
    ("round_number", (5, -(10**12))),
    ("round_number", (-(10**50), -(10**15))),
]


@pytest.mark.parametrize("name,args", HOSTILE, ids=[f"{n}{i}" for i, (n, _) in enumerate(HOSTILE)])
def test_hostile_inputs_answer_quickly(name: str, args: tuple) -> None:
    started = time.perf_counter()
    result = getattr(MathAPI(), name)(*args)
    assert time.perf_counter() - started < 1.0
    if name == "round_number":
        assert result == {"result": 0} and type(result["result"]) is int  # exact, not an error
    else:
        assert set(result) == {"error"}


def test_high_precision_within_limits_still_matches(process_globals: None) -> None:
    same("logarithm", 3287.0, 10, 2000)
    same("square_root", 2, 5000)
    # Beyond the limit, an unconvertible argument still gets the official's quick error.
    assert MathAPI().logarithm("type", 20, 10**6) == {"error": "cannot create mpf from 'type'"}


ABSURD = 1974202140965533  # a card number the fuzzer passes as precision


@pytest.mark.parametrize(
    "name,args",
    [
        ("square_root", (220.34, ABSURD)),
        ("square_root", (4, ABSURD)),
        ("square_root", (0.25, ABSURD)),
        ("square_root", (3**100, 2**63 - 1)),
        ("square_root", (0, ABSURD)),
        ("logarithm", (20, 10, ABSURD)),
        ("logarithm", (1, 0, ABSURD)),
        ("logarithm", (0, 1e999, ABSURD)),
        ("logarithm", ("10e-1", "abc", ABSURD)),
        ("logarithm", ("1", None, ABSURD)),
        ("logarithm", ("1+0j", "nan", ABSURD)),
    ],
)
def test_precision_beyond_memory_fails_like_the_official(process_globals: None, name: str, args: tuple) -> None:
    # The official fails its first allocation at once (MemoryError) unless the answer is exact
    # or special; ours reproduces that without allocating.
    started = time.perf_counter()
    same(name, *args)
    assert time.perf_counter() - started < 1.0
