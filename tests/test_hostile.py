"""Hostile and malformed call text: an error result every time, nothing executed, nothing changed."""

from __future__ import annotations

import builtins
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import BACKEND_MODULES
from tests.oracle import canonical
from toolenv.executor import Session

ALL_CLASSES = list(BACKEND_MODULES)

# Each of these must be refused (error result) without running anything.
REFUSED = [
    "__import__('os').system('touch pwned')",
    "__import__('os').getcwd()",
    "eval('1+1')",
    "exec('import os')",
    "open('pwned', 'w')",
    "os.remove('x')",
    "globals()",
    "ls.__globals__",
    "ls.__self__.load_scenario({})",
    "cd.__class__.__mro__[1].__subclasses__()",
    "load_scenario({'root': {}})",
    "public_state()",
    "tool_docs()",
    "_load_scenario({})",
    "__init__()",
    "__class__()",
    "_random()",
    "__dict__()",
    "ls(a=__import__('os'))",
    "ls(a=(lambda: 1)())",
    "ls(a=[x for x in ().__class__.__bases__[0].__subclasses__()])",
    "ls(**{'a': True})",
    "ls(*[True])",
    "GorillaFileSystem.ls()",
    "GorillaFileSystem().ls()",
    "self.ls()",
    "ls()()",
    "ls(a=1 if True else 0)",
    "ls(a=f'{1}')",
    "ls(a=b'x')",
    "ls(a=2**1000000)",
    "ls(a=9**9**9)",
    "ls(a=" + "9" * 100_000 + ")",
    "ls(a=" + "[" * 100_000 + ")",
    "ls(a=" + "(" * 10_000 + ")" * 10_000 + ")",
    "ls(a={" * 1000 + "}" * 1000 + ")",
    "ls(a='" + "x" * 300_000 + "')",
    "sorted([3, 1])",
    "print('hi')",
    "breakpoint()",
    "exit()",
    "quit()",
    "kill()",
    "import os",
    "ls(); import os",
    "ls()\nimport os",
    "[ls(), ls()]",
    "ls(a=True",
    "\x00",
    "ls(a='\udcff')",
    "",
    "   ",
    "ls",
    "42",
    "'ls()'",
]

# Literal arguments that the official engine would run for a very long time (or forever).
# Ours must answer quickly; an error result is the expected answer.
HEAVY_BUT_LITERAL = [
    "power(base=10, exponent=999999999)",
    "power(base=10.5, exponent=99999999999999)",
    "power(base=2, exponent=10**8)",
    "logarithm(value=10, base=2, precision=999999999)",
    "square_root(number=2, precision=999999999)",
    "round_number(number=1.5, decimal_places=999999999)",
    "tail(file_name='a.txt', lines=99999999999999999999)",
    "mean(numbers=[" + ", ".join(["1e308"] * 2000) + "])",
]


@contextmanager
def hang_guard(seconds: int = 60) -> Iterator[None]:
    """Fail (rather than hang CI) if a call never returns; this is not a speed assertion."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: the executor hung")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _process_snapshot(folder: Path) -> tuple:
    return (
        sorted(p.name for p in folder.iterdir()),
        dict(os.environ),
        sorted(sys.modules),
        sorted(vars(builtins)),
        os.getcwd(),
    )


@pytest.fixture()
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    monkeypatch.chdir(tmp_path)
    return Session(ALL_CLASSES, {})


@pytest.mark.parametrize("text", REFUSED, ids=range(len(REFUSED)))
def test_hostile_text_is_refused_and_changes_nothing(session: Session, tmp_path: Path, text: str) -> None:
    state_before = canonical(session.public_state())
    process_before = _process_snapshot(tmp_path)
    with hang_guard():
        result = session.execute_text(text)
    assert not result.ok
    assert result.text.startswith("Error during execution: ")
    assert "\n" not in result.text[:300]
    assert canonical(session.public_state()) == state_before
    assert _process_snapshot(tmp_path) == process_before


@pytest.mark.parametrize("text", HEAVY_BUT_LITERAL, ids=range(len(HEAVY_BUT_LITERAL)))
def test_expensive_literal_arguments_return_in_bounded_time(session: Session, tmp_path: Path, text: str) -> None:
    process_before = _process_snapshot(tmp_path)
    with hang_guard():
        result = session.execute_text(text)
    assert isinstance(result.text, str)
    assert _process_snapshot(tmp_path) == process_before


@given(st.text(max_size=400))
@settings(max_examples=400, deadline=None)
def test_arbitrary_text_never_raises(text: str) -> None:
    session = Session(["GorillaFileSystem", "MathAPI"], {})
    result = session.execute_text(text)
    assert isinstance(result.text, str)
