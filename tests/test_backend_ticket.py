"""TicketAPI: the reproduced quirks, compared directly with the official class."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from envs.ticket import TicketAPI
from tests.oracle import call_both, official_pair, require_official, state_differences

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code.ticket_api"


def pair(config: dict[str, Any] | None = None) -> tuple[TicketAPI, Any]:
    require_official()
    return official_pair(TicketAPI, config)


def test_defaults_and_attribute_order() -> None:
    ours, theirs = pair()
    assert list(ours.public_state()) == ["ticket_queue", "ticket_counter", "current_user"]
    assert state_differences(ours, theirs) == []
    plain = TicketAPI()  # the constructor alone already holds the defaults
    assert plain.public_state() == {"ticket_queue": [], "ticket_counter": 1, "current_user": None}


def test_login_gates_and_error_shapes() -> None:
    ours, theirs = pair()
    assert call_both(ours, theirs, "create_ticket", "t").startswith('{"error"')
    # Quirk: the not-logged-in error of get_user_tickets is a one-element *list*.
    assert call_both(ours, theirs, "get_user_tickets") == str(
        [{"error": "User not authenticated. Please log in to view tickets."}]
    )
    call_both(ours, theirs, "logout")
    call_both(ours, theirs, "ticket_login", "", "p")
    call_both(ours, theirs, "ticket_login", "u", "p")  # any non-empty pair logs in
    call_both(ours, theirs, "ticket_get_login_status")


def test_create_priority_checks_and_returned_reference() -> None:
    ours, theirs = pair({"current_user": "u"})
    for priority in (0, 6, 2.5, True, "2"):  # only the range is checked; a string raises
        call_both(ours, theirs, "create_ticket", "t", "d", priority)
    created = ours.create_ticket("x")
    assert created is ours.ticket_queue[-1]  # the stored dict itself is returned
    theirs.create_ticket("x")
    assert state_differences(ours, theirs) == []


def test_edit_close_resolve_and_filters() -> None:
    ours, theirs = pair(
        {"ticket_queue": [{"id": 7, "title": "a", "status": "Open", "created_by": "u"}], "ticket_counter": 8}
    )
    call_both(ours, theirs, "get_user_tickets", 5)  # not logged in
    call_both(ours, theirs, "ticket_login", "u", "p")
    call_both(ours, theirs, "get_ticket", 7.0)  # found by ==
    call_both(ours, theirs, "get_ticket", "7")
    call_both(ours, theirs, "edit_ticket", 7, {"title": None, "priority": 3})  # None is skipped
    call_both(ours, theirs, "edit_ticket", 7, {"owner": 1, "title": "z"})
    call_both(ours, theirs, "edit_ticket", 7, {1: "x"})  # join of a non-string raises
    call_both(ours, theirs, "edit_ticket", 7, ["title"])
    call_both(ours, theirs, "get_user_tickets", "OPEN")  # case-insensitive
    call_both(ours, theirs, "get_user_tickets", 5)  # a non-string filter raises only with tickets
    call_both(ours, theirs, "edit_ticket", 7, {"status": 3})
    call_both(ours, theirs, "get_user_tickets", "open")  # the ticket's own status fails first
    call_both(ours, theirs, "edit_ticket", 7, {"status": ["x"]})
    assert "'list' object" in call_both(ours, theirs, "get_user_tickets", 5)  # ... before the filter's
    for method in ("close_ticket", "close_ticket", "resolve_ticket", "resolve_ticket"):
        args = (7,) if method == "close_ticket" else (7, "done")
        call_both(ours, theirs, method, *args)
    call_both(ours, theirs, "close_ticket", 99)
    call_both(ours, theirs, "resolve_ticket", [99], "r")


def test_invalid_field_text_matches_official_for_several_hash_seeds() -> None:
    require_official()
    script = (
        "from envs.ticket import TicketAPI as M\n"
        f"from {OFFICIAL_MODULE} import TicketAPI as O\n"
        "out = []\n"
        "for n in (2, 3, 6, 30):\n"
        "    updates = {f'k{i}': i for i in range(n)}\n"
        "    updates['title'] = 't'\n"
        "    texts = []\n"
        "    for api, load in ((M(), 'load_scenario'), (O(), '_load_scenario')):\n"
        "        getattr(api, load)({'ticket_queue': [{'id': 1, 'status': 'Open', 'created_by': 'u'}]})\n"
        "        texts.append(api.edit_ticket(1, dict(updates))['error'])\n"
        "    out.append(texts[0] == texts[1])\n"
        "    out.append(texts[0])\n"
        "print(repr(out))\n"
    )
    seen = set()
    for seed in (0, 1, 2, 5, 9):
        env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        result = ast.literal_eval(done.stdout)
        assert all(result[0::2]), (seed, result)
        seen.add(tuple(result[1::2]))
    assert len(seen) > 1  # the order does depend on the hash seed
