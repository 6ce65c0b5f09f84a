"""MathAPI: stateless arithmetic, statistics and unit conversions.

Behaviour-identical to the official ``math_api.py`` backend for every input that the official
code answers in reasonable time. Two differences in *how*, not *what*:

- ``logarithm`` works in a private ``mpmath`` context owned by the instance and ``square_root``
  in a private ``decimal.Context``; the official sets the process-global ``mpmath.mp.dps`` and
  the thread's decimal precision. The returned numbers (and their reprs, which are what the
  result text shows) are the same.
- Inputs that would make the official code run for seconds or exhaust memory (huge precisions,
  huge integer powers, enormous numbers or number strings) get an ``{"error": ...}`` reply
  instead. Each such guard is marked "hostile input" below.
"""

from __future__ import annotations

import math
import re
import sys
from decimal import Context, Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

import mpmath

from envs.base import Backend

#: Length unit → metres (``km`` and ``m`` are ints: an int value stays exact until the second step).
_METRES_PER_UNIT: Mapping[str, float] = MappingProxyType(
    {"km": 1000, "m": 1, "cm": 0.01, "mm": 0.001, "um": 1e-6, "nm": 1e-9}
)
#: Metres → unit, computed as ``1 / factor`` (so, e.g., ``um`` is 999999.9999999999, not 1e6).
_UNITS_PER_METRE: Mapping[str, float] = MappingProxyType(
    {unit: 1 / factor for unit, factor in _METRES_PER_UNIT.items()}
)
#: ``"<in>_to_<out>"`` → multiplier; the two temperature entries also shift by 32.
_IMPERIAL_FACTORS: Mapping[str, float] = MappingProxyType(
    {
        "cm_to_in": 0.393701,
        "in_to_cm": 2.54,
        "m_to_ft": 3.28084,
        "ft_to_m": 0.3048,
        "m_to_yd": 1.09361,
        "yd_to_m": 0.9144,
        "km_to_miles": 0.621371,
        "miles_to_km": 1.60934,
        "kg_to_lb": 2.20462,
        "lb_to_kg": 0.453592,
        "celsius_to_fahrenheit": 1.8,
        "fahrenheit_to_celsius": 5 / 9,
    }
)

_EXPONENT = re.compile(r"e[+-]?(\d+)")

_NOT_NUMBERS = "All elements in the list must be numbers"
_BOTH_NUMBERS = "Both inputs must be numbers"
_TOO_LARGE = "Conversion resulted in a value too large to represent"

# Hostile-input limits (deliberate divergence: beyond them the official code takes seconds to
# hours, or runs out of memory; we answer with an error dict instead).
_MAX_LOG_DIGITS = 15_000  # logarithm precision, decimal digits (~0.3 s at the limit)
_MAX_NUMBER_STRING = 256  # characters of a number given as a string to logarithm
_MAX_EXPONENT_DIGITS = 40  # digits of a decimal exponent inside such a string
_MAX_SQRT_DIGITS = 100_000  # square_root precision, decimal digits (~0.4 s at the limit)
_MAX_SQRT_INT_BITS = 1 << 17  # Decimal(int) conversion is quadratic in the size of the int
_MAX_POWER_BITS = 1 << 21  # size of an exact integer power

# Beyond this many digits the official's working numbers (≥ 0.4 PB) exceed any 64-bit address
# space, so its first big allocation fails at once with MemoryError, on every machine: that
# outcome is reproduced (without allocating anything), not refused.
_BEYOND_MEMORY = 10**15


def _context(precision: Any) -> mpmath.MPContext:
    try:
        hash(precision)
    except TypeError:  # an unhashable precision fails in the dps setter, as in the official
        return _new_context(precision)
    return _cached_context(precision)


@lru_cache(maxsize=64)
def _cached_context(precision: Any) -> mpmath.MPContext:
    return _new_context(precision)


def _new_context(precision: Any) -> mpmath.MPContext:
    """A private mpmath context working at ``precision`` decimal digits.

    The official backend sets the process-global ``mpmath.mp.dps``; results (mpf) print with
    their context's precision, so one context per precision gives the same text without
    touching global state. Building a context costs milliseconds, hence the cache; a cached
    context's precision is never changed afterwards (a returned mpf keeps printing the same).
    ``dps`` is assigned exactly as the official does, so a bad precision fails the same way."""
    context = mpmath.MPContext()
    context.dps = precision
    return context


class MathAPI(Backend):
    """Stateless math tools; every reply is ``{"result": x}`` or ``{"error": message}``.

    There is no compared state. Reproduced behaviour worth knowing:

    - ``logarithm`` returns an ``mpmath`` number computed at ``precision`` decimal digits (its
      repr, not JSON, ends up in the result text) and turns any exception into an error dict;
    - ``square_root`` returns a ``Decimal`` rounded to ``precision`` significant digits; an
      invalid precision value raises (only type errors become an error dict);
    - results keep Python's types: ``add(1, 2)`` gives an int, ``divide`` always a float;
    - only some methods validate types up front; elsewhere only ``TypeError`` is turned into an
      error dict and other exceptions (e.g. ``OverflowError``) propagate.
    """

    class_name = "MathAPI"
    doc_file = "math_api.json"
    stateless = True

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        """MathAPI has no state; the official engine never loads it."""

    # -- precision arithmetic ------------------------------------------------------------------

    def logarithm(self, value: float, base: float, precision: int) -> dict[str, Any]:
        try:
            mp = _context(precision)
            if _hostile_number_string(value) or _hostile_number_string(base):  # hostile input
                return {"error": "Number string too long or exponent too large"}
            with _KeepIntDigitLimit():
                if mp.dps > _BEYOND_MEMORY:
                    _fail_like_an_impossible_allocation(mp, value, base)
                elif mp.dps > _MAX_LOG_DIGITS:  # hostile input
                    # An unconvertible value or base still gets the official's (quick) error.
                    _check_convertible(mp, value, base)
                    return {"error": f"Precision too large: at most {_MAX_LOG_DIGITS} digits are supported"}
                result = mp.log(value) / mp.log(base)
            # The mpf/mpc keeps a reference to ``mp``: its repr uses ``precision`` digits.
            return {"result": result}
        except Exception as exc:  # the official reports every failure as an error dict
            return {"error": str(exc)}

    def square_root(self, number: float, precision: int) -> dict[str, Any]:
        try:
            if number < 0:
                return {"error": "Cannot calculate square root of a negative number"}
            context = Context()
            # Same setter as ``getcontext().prec = …``: a bad type raises TypeError (reported
            # below), an out-of-range int raises ValueError/OverflowError (propagates).
            context.prec = precision
            if isinstance(number, int) and number.bit_length() > _MAX_SQRT_INT_BITS:  # hostile input
                return {"error": "Number too large for a square root"}
            if context.prec > _BEYOND_MEMORY:
                return {"result": _exact_sqrt_or_memory_error(Decimal(number))}
            if context.prec > _MAX_SQRT_DIGITS:  # hostile input
                return {"error": f"Precision too large: at most {_MAX_SQRT_DIGITS} digits are supported"}
            return {"result": Decimal(number).sqrt(context)}
        except (TypeError, InvalidOperation):
            return {"error": "Input must be a number or computation resulted in an invalid operation"}

    # -- statistics over a list ----------------------------------------------------------------

    def mean(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot calculate mean of an empty list"}
        try:
            return {"result": sum(numbers) / len(numbers)}
        except TypeError:
            return {"error": _NOT_NUMBERS}

    def standard_deviation(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot calculate standard deviation of an empty list"}
        try:
            average = sum(numbers) / len(numbers)
            variance = sum((x - average) ** 2 for x in numbers) / len(numbers)  # population
            return {"result": math.sqrt(variance)}
        except TypeError:
            return {"error": _NOT_NUMBERS}

    def min_value(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot find minimum of an empty list"}
        try:
            return {"result": min(numbers)}
        except TypeError:
            return {"error": _NOT_NUMBERS}

    def max_value(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot find maximum of an empty list"}
        try:
            return {"result": max(numbers)}
        except TypeError:
            return {"error": _NOT_NUMBERS}

    def sum_values(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot calculate sum of an empty list"}
        try:
            return {"result": sum(numbers)}
        except TypeError:
            return {"error": _NOT_NUMBERS}

    # -- unit conversions ----------------------------------------------------------------------

    def si_unit_conversion(self, value: float, unit_in: str, unit_out: str) -> dict[str, Any]:
        if not isinstance(value, (int, float)):
            return {"error": "Value must be a number"}
        if unit_in not in _METRES_PER_UNIT or unit_out not in _UNITS_PER_METRE:
            return {"error": f"Conversion from '{unit_in}' to '{unit_out}' is not supported"}
        try:
            # Two steps through metres, in this order: the rounding of each step shows.
            return {"result": value * _METRES_PER_UNIT[unit_in] * _UNITS_PER_METRE[unit_out]}
        except OverflowError:
            return {"error": _TOO_LARGE}

    def imperial_si_conversion(self, value: float, unit_in: str, unit_out: str) -> dict[str, Any]:
        if not isinstance(value, (int, float)):
            return {"error": "Value must be a number"}
        if unit_in == unit_out:
            return {"result": value}  # unchanged, even for unknown units
        factor = _IMPERIAL_FACTORS.get(f"{unit_in}_to_{unit_out}")
        if factor is None:
            return {"error": f"Conversion from '{unit_in}' to '{unit_out}' is not supported"}
        try:
            if unit_in == "celsius" and unit_out == "fahrenheit":
                return {"result": value * factor + 32}
            if unit_in == "fahrenheit" and unit_out == "celsius":
                return {"result": (value - 32) * factor}
            return {"result": value * factor}
        except OverflowError:
            return {"error": _TOO_LARGE}

    # -- two-operand arithmetic ----------------------------------------------------------------

    def add(self, a: float, b: float) -> dict[str, Any]:
        try:
            return {"result": a + b}
        except TypeError:
            return {"error": _BOTH_NUMBERS}

    def subtract(self, a: float, b: float) -> dict[str, Any]:
        try:
            return {"result": a - b}
        except TypeError:
            return {"error": _BOTH_NUMBERS}

    def multiply(self, a: float, b: float) -> dict[str, Any]:
        # The only operator with an explicit type check (so "ab" * 2 is refused, "a" + "b" is not).
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return {"error": _BOTH_NUMBERS}
        return {"result": a * b}

    def divide(self, a: float, b: float) -> dict[str, Any]:
        try:
            if b == 0:
                return {"error": "Cannot divide by zero"}
            return {"result": a / b}
        except TypeError:
            return {"error": _BOTH_NUMBERS}

    def power(self, base: float, exponent: float) -> dict[str, Any]:
        if _huge_integer_power(base, exponent):  # hostile input
            return {"error": f"Result too large: more than {_MAX_POWER_BITS} bits"}
        try:
            return {"result": base**exponent}
        except TypeError:
            return {"error": _BOTH_NUMBERS}

    def percentage(self, part: float, whole: float) -> dict[str, Any]:
        try:
            if whole == 0:
                return {"error": "Whole value cannot be zero"}
            return {"result": (part / whole) * 100}
        except TypeError:
            return {"error": _BOTH_NUMBERS}

    # -- one-operand ---------------------------------------------------------------------------

    def absolute_value(self, number: float) -> dict[str, Any]:
        try:
            return {"result": abs(number)}
        except TypeError:
            return {"error": "Input must be a number"}

    def round_number(self, number: float, decimal_places: int = 0) -> dict[str, Any]:
        if _rounds_int_to_zero(number, decimal_places):
            # Same answer as round(), which would first build 10**-decimal_places (hostile input:
            # that can take hours); here the result is known to be exactly 0.
            return {"result": 0}
        try:
            return {"result": round(number, decimal_places)}
        except TypeError:
            return {"error": "First input must be a number, second input must be an integer"}


# -- hostile-input detection and mpmath hygiene ------------------------------------------------


def _hostile_number_string(value: Any) -> bool:
    """mpmath parses number strings itself: its fallback pattern for complex strings is
    polynomial in the length (seconds at a few thousand characters) and a decimal exponent of
    n digits costs it ~3.3n multiplications at the working precision."""
    if not isinstance(value, str):
        return False
    if len(value) > _MAX_NUMBER_STRING:
        return True
    # mpmath ignores case, underscores and (in complex strings) spaces; int() takes any
    # Unicode digits, as \d does.
    text = "".join(value.lower().split()).replace("_", "")
    return any(len(digits.lstrip("0")) > _MAX_EXPONENT_DIGITS for digits in _EXPONENT.findall(text))


def _check_convertible(mp: mpmath.MPContext, *numbers: Any) -> None:
    """Raise what ``mp.log`` raises for an argument mpmath cannot turn into a number.

    Whether a conversion fails does not depend on the precision, so it is tried at 53 bits
    (cheap) and the context's precision is put back.
    """
    digits = mp.dps
    mp.prec = 53
    try:
        for number in numbers:
            mp.convert(number)
    finally:
        mp.dps = digits


def _fail_like_an_impossible_allocation(mp: mpmath.MPContext, value: Any, base: Any) -> None:
    """What ``mp.log(value) / mp.log(base)`` does when ``mp``'s precision is beyond memory.

    The official converts ``value`` and takes its log, then does the same for ``base``. A log
    needs precision-sized numbers, hence raises MemoryError, except for the values it answers
    outright (0, 1, +inf and nan, also as complex numbers with a zero imaginary part); so may
    the conversion of a string that is not exact in binary. Conversion errors do not depend on
    the precision: they are found at 53 bits. Returns only when both logs are instant; the
    caller then computes the real result, which is instant too.
    """
    digits = mp.dps
    for number in (value, base):
        mp.prec = 53
        try:
            converted = mp.convert(number)
        finally:
            mp.dps = digits
        if not _log_is_instant(converted):
            raise MemoryError()
        if isinstance(number, str):
            mp.convert(number)  # at the real precision: "10e-1" fails to allocate, "1" does not


def _log_is_instant(number: Any) -> bool:
    raw = getattr(number, "_mpf_", None)
    if raw is None:
        real, imaginary = getattr(number, "_mpc_", (None, None))
        raw = real if imaginary == mpmath.libmp.fzero else None
    return raw in _INSTANT_LOGS


#: mpmath's raw forms of 0, 1, +inf and nan, whose log needs no computation.
_INSTANT_LOGS = (mpmath.libmp.fzero, mpmath.libmp.fone, mpmath.libmp.finf, mpmath.libmp.fnan)


def _exact_sqrt_or_memory_error(number: Decimal) -> Decimal:
    """libmpdec's square root at a precision beyond memory: the full computation fails to
    allocate, and libmpdec retries at the operand's own number of digits, which is enough when
    the root is exact. An inexact retry is reported as MemoryError."""
    context = Context(prec=max(1, len(number.as_tuple().digits)), traps=[])
    root = number.sqrt(context)
    if any(context.flags.values()):
        raise MemoryError()
    return root


def _huge_integer_power(base: Any, exponent: Any) -> bool:
    """True when ``base ** exponent`` is an exact integer of more than ``_MAX_POWER_BITS`` bits."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return False
    magnitude = abs(base)
    if magnitude <= 1:
        return False
    if exponent.bit_length() > 64:  # also keeps the float product below finite
        return True
    return exponent * math.log2(magnitude) > _MAX_POWER_BITS


def _rounds_int_to_zero(number: Any, places: Any) -> bool:
    """True when ``round(number, places)`` is an int rounded at a power of ten so far above
    ``|number|`` (10**k > 2*|number|) that the result is 0."""
    if not (isinstance(number, int) and isinstance(places, int)) or places >= 0:
        return False
    # 10**k > 2**(bits+1) > 2*|number| once k > (bits + 1) * log10(2); log10(2) < 1/3.
    return -places > (number.bit_length() + 1) // 3 + 1


class _KeepIntDigitLimit:
    """Restore ``sys.get_int_max_str_digits()`` after an mpmath string conversion.

    mpmath lifts the int/str digit limit while it parses a number string and does not put it
    back when the parse fails (``log("abc")``), which would leave the whole process without the
    limit. The official backend leaks that; we do not (deliberate divergence).
    """

    __slots__ = ("_limit",)

    def __enter__(self) -> None:
        self._limit = sys.get_int_max_str_digits()

    def __exit__(self, *exc: object) -> None:
        if sys.get_int_max_str_digits() != self._limit:
            sys.set_int_max_str_digits(self._limit)
