"""The number formats and notes the reports (Markdown and HTML) share."""

from __future__ import annotations

from typing import Any


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def positional_note(summary: dict[str, Any]) -> str:
    """How many calls lost positional arguments to BFCL's python decoder (as ``bfcl evaluate``
    scores them), so a reader sees when that decided a score."""
    dropped = summary.get("positional_dropped", {"calls": 0, "tasks": 0})
    return (
        f"Positional arguments dropped (BFCL's python decoder): {dropped['calls']} call(s) "
        f"in {dropped['tasks']} task(s)."
    )


def points(value: float | None) -> str:
    return "" if value is None else f"{100 * value + 0.0:+.2f}"  # + 0.0: no "-0.00"


def spread(value: float | None) -> str:
    """A standard deviation in percentage points (``± 5.10``); empty when undefined."""
    return "" if value is None else f"± {100 * value:.2f}"
