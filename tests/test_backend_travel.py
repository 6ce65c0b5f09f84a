"""TravelAPI: the reproduced quirks, RNG order, long-context behaviour and bounded hostile input.

Comparisons against the official class are skipped when bfcl-eval is not installed.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import envs.travel as travel
from envs._official import official_literal
from envs.travel import TravelAPI
from tests.oracle import call_both, canonical, official_pair, require_official, state_differences

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"


def official_class() -> type:
    require_official()
    return importlib.import_module(f"{OFFICIAL_MODULE}.travel_booking").TravelAPI


@pytest.fixture
def restore_official_long_context():
    """The official class injects (and later mutates) its module-level long-context dicts:
    restore them so that these tests neither see nor leave such leaks."""
    require_official()
    module = importlib.import_module(f"{OFFICIAL_MODULE}.long_context")
    names = ("CREDIT_CARD_EXTENSION", "BOOKING_RECORD_EXTENSION")
    saved = {name: copy.deepcopy(getattr(module, name)) for name in names}
    yield
    for name, value in saved.items():
        getattr(module, name).clear()
        getattr(module, name).update(value)


def pair(config: dict[str, Any] | None = None, long_context: bool = False) -> tuple[TravelAPI, Any]:
    require_official()
    return official_pair(TravelAPI, config, long_context)


def login(ours: Any, theirs: Any) -> str:
    text = call_both(ours, theirs, "authenticate_travel", "id", "secret", "refresh", "read_write", "Ada", "Byron")
    return json.loads(text)["access_token"]


def test_defaults_and_attribute_order() -> None:
    ours, theirs = pair()
    assert list(ours.public_state()) == [k for k in vars(theirs) if not k.startswith("_")]
    assert canonical(ours.public_state()) == canonical({k: v for k, v in vars(theirs).items() if not k.startswith("_")})
    assert state_differences(ours, theirs) == []


def test_rng_order_of_ids_balances_and_insurance() -> None:
    ours, theirs = pair({"random_seed": 99})
    token = login(ours, theirs)
    card = json.loads(call_both(ours, theirs, "register_credit_card", token, "4111", "12/30", "Ada", 123))["card_id"]
    call_both(ours, theirs, "get_credit_card_balance", token, card)
    booked = json.loads(call_both(ours, theirs, "book_flight", token, card, "2024-05-06", "SFO", "LAX", "business"))
    assert booked["booking_status"] is True and booked["booking_history"] == {}
    call_both(ours, theirs, "purchase_insurance", token, "full", booked["booking_id"], 20, card)
    call_both(ours, theirs, "retrieve_invoice", token, booked["booking_id"])
    call_both(ours, theirs, "get_booking_history", token)
    call_both(ours, theirs, "cancel_booking", token, booked["booking_id"])
    assert ours._random.getstate() == theirs._random.getstate()


def test_token_checks_and_card_quirks() -> None:
    ours, theirs = pair({"credit_card_list": {"c1": {"balance": 500}, "c2": {"card_number": "9"}}})
    # Not logged in: only register_credit_card knows about an unset token.
    call_both(ours, theirs, "register_credit_card", None, "1", "1", "a", 1)
    call_both(ours, theirs, "get_credit_card_balance", None, "c1")  # None == None passes
    call_both(ours, theirs, "get_credit_card_balance", None, "zz")
    token = login(ours, theirs)
    # The card *number* is checked against card *ids*.
    assert "already registered" in call_both(ours, theirs, "register_credit_card", token, "c1", "1", "a", 1)
    call_both(ours, theirs, "book_flight", token, "c2", "2024-01-01", "SFO", "LAX", "economy")  # no balance
    call_both(ours, theirs, "book_flight", "bad", "c1", "2024-01-01", "SFO", "LAX", "economy")
    call_both(ours, theirs, "book_flight", token, "c1", "2024-01-01", "XXX", "LAX", "economy")
    call_both(ours, theirs, "book_flight", token, "c1", "01/01/2024", "SFO", "LAX", "economy")
    call_both(ours, theirs, "book_flight", token, "c1", 20240101, "SFO", "LAX", "economy")  # TypeError
    call_both(ours, theirs, "book_flight", token, "c1", "2024-01-01", "SFO", "HND", "economy")  # no route
    call_both(ours, theirs, "set_budget_limit", token, "600")  # fare is 400
    # Quirk: the card balance, not the fare, is compared with the budget limit.
    assert "less than budget" in call_both(
        ours, theirs, "book_flight", token, "c1", "2024-01-01", "SFO", "LAX", "economy"
    )
    call_both(ours, theirs, "purchase_insurance", token, "a", "nope", 500, "c1")
    call_both(ours, theirs, "purchase_insurance", token, "a", "nope", "5", "c1")  # TypeError


def test_invalid_class_text_matches_official_for_several_hash_seeds() -> None:
    require_official()
    script = (
        "from envs.travel import TravelAPI as M\n"
        f"from {OFFICIAL_MODULE}.travel_booking import TravelAPI as O\n"
        "cfg = lambda: {'credit_card_list': {'c': {'balance': 9}}, 'access_token': 'T', 'token_expires_in': 2}\n"
        "m = M(); m.load_scenario(cfg()); o = O(); o._load_scenario(cfg())\n"
        "a = m.book_flight('T', 'c', '2024-01-01', 'SFO', 'LAX', 'x')\n"
        "b = o.book_flight('T', 'c', '2024-01-01', 'SFO', 'LAX', 'x')\n"
        "print(a == b, a['error'])\n"
    )
    texts = set()
    for seed in (0, 1, 3, 4, 7, 11, 12, 17):  # seeds where insertion order changes the repr included
        env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        same, text = done.stdout.strip().split(" ", 1)
        assert same == "True", (seed, text)
        texts.add(text)
    assert len(texts) > 1  # the text does depend on the hash seed


def test_flight_cost_table_factors_and_errors() -> None:
    ours, theirs = pair()
    fares = official_literal("travel_booking.py", "TravelAPI.get_flight_cost.base_costs")
    assert len(fares) == 153
    for date in ("2024-01-01", "2024-01-02", ["12", "3"], {"7": 1}):
        for travel_class in ("economy", "business", "first"):
            call_both(ours, theirs, "get_flight_cost", "SFO", "LAX", date, travel_class)
    assert ours.get_flight_cost("SFO", "LAX", "2024-01-02", "first") == {"travel_cost_list": [1000.0]}  # 200*5*1
    for args in (
        ("SFO", "XXX", "2024", "economy"),
        ("SFO", "LAX", "2024", "coach"),
        (["SFO"], "LAX", "1", "first"),
        ("SFO", "LAX", "2024", ["first"]),
        ("SFO", "LAX", 5, "first"),
        ("SFO", "LAX", [1], "first"),
        ("SFO", "LAX", "²", "first"),
    ):
        call_both(ours, theirs, "get_flight_cost", *args)


def test_exchange_rate_and_airports() -> None:
    ours, theirs = pair()
    assert ours.compute_exchange_rate("USD", "JPY", 2) == {"exchanged_value": 220.0}
    assert ours.compute_exchange_rate("EUR", "USD", 10) == {"exchanged_value": 12.5}
    for args in (
        ("USD", "EUR", 3),
        ("GBP", "USD", 1.234),
        ("USD", "USD", 1),
        ("USD", "RMB", "ab"),
        ("USD", "EUR", "ab"),
        ("JPY", "USD", [1]),
        (["USD"], "RMB", 1),
        ("RMB", "USD", 10**400),
    ):
        call_both(ours, theirs, "compute_exchange_rate", *args)
    call_both(ours, theirs, "list_all_airports")
    for location in ("Tokyo", "Paris", "Atlantis", ["Tokyo"]):
        call_both(ours, theirs, "get_nearest_airport_by_city", location)
    assert len(ours.list_all_airports()) == 23


def test_age_uses_the_private_date_source(monkeypatch: pytest.MonkeyPatch) -> None:
    api = TravelAPI()
    api.load_scenario({"user_first_name": "Ada", "user_last_name": "Byron"})
    monkeypatch.setattr(travel, "_today", lambda: datetime(2030, 6, 15))
    verify = api.verify_traveler_information
    assert verify("Ada", "Byron", "2012-06-15", "US1") == {"verification_status": True}  # 18 today
    assert (
        verify("Ada", "Byron", "2012-06-16", "US1")["verification_failure"] == "Traveler must be at least 18 years old."
    )
    assert (
        verify("Ada", "Byron", "2012-06-14", "UK1")["verification_failure"]
        == "Passport must be issued by the United States."
    )
    assert "YYYY-MM-DD" in verify("Ada", "Byron", "2012-13-01", "US1")["verification_failure"]
    # Quirk: no space between the sentences; the stored names are echoed.
    assert verify("Bob", "Byron", "x", "y")["verification_failure"] == (
        "Cannot book flight information for another user.Expected Ada Byron, got Bob Byron"
    )
    with pytest.raises(TypeError):
        verify("Ada", "Byron", 20000101, "US1")
    with pytest.raises(AttributeError):
        verify("Ada", "Byron", "1990-01-01", 5)


def test_verify_against_official_with_real_clock() -> None:
    ours, theirs = pair({"user_first_name": "Ada", "user_last_name": "Byron"})
    for dob, passport in (("1990-01-01", "US1"), ("2020-01-01", "US1"), ("1990-01-01", "X"), ("bad", "US")):
        call_both(ours, theirs, "verify_traveler_information", "Ada", "Byron", dob, passport)
    call_both(ours, theirs, "verify_traveler_information", ["Ada"], "Byron", "bad", "US")


def test_long_context_injection_and_results(restore_official_long_context: None) -> None:
    config = {
        "credit_card_list": {"1234567812345678": {"balance": 7.0}},
        "booking_record": {"booking_901": {"card_id": "q"}},
    }
    ours, theirs = pair(config, long_context=True)
    assert ours.credit_card_list["1234567812345678"] == {"balance": 7.0}  # existing keys win
    assert len(ours.credit_card_list) == 22 and len(ours.booking_record) == 16
    token = login(ours, theirs)
    costs = json.loads(call_both(ours, theirs, "get_flight_cost", "LAX", "SFO", "2024-01-03", "first"))[
        "travel_cost_list"
    ]
    assert len(costs) == 153
    booked = call_both(ours, theirs, "book_flight", token, "2345678923456789", "2024-01-03", "LAX", "SFO", "economy")
    assert '"booking_901"' in booked  # the whole record is returned in long context
    call_both(ours, theirs, "cancel_booking", token, "booking_902")
    call_both(ours, theirs, "get_all_credit_cards")


def test_long_context_entries_are_private_to_each_instance() -> None:
    """Deliberate divergence: the official shares the long-context dicts across instances."""
    first, second = TravelAPI(), TravelAPI()
    first.load_scenario({}, long_context=True)
    second.load_scenario({}, long_context=True)
    first.credit_card_list["1234567812345678"]["balance"] = -1
    third = TravelAPI()
    third.load_scenario({}, long_context=True)
    original = official_literal("long_context.py", "CREDIT_CARD_EXTENSION")["1234567812345678"]["balance"]
    assert second.credit_card_list["1234567812345678"]["balance"] == original
    assert third.credit_card_list["1234567812345678"]["balance"] == original


def test_hostile_arguments_stay_bounded() -> None:
    api = TravelAPI()
    api.load_scenario({"access_token": "T", "token_expires_in": 2})
    start = time.perf_counter()
    with pytest.raises(ValueError):
        api.compute_exchange_rate("USD", "JPY", "a" * 199_000)  # 110x repetition, then float()
    with pytest.raises(TypeError):
        api.compute_exchange_rate("USD", "JPY", [0] * 66_000)
    assert api.set_budget_limit("T", "9" * 199_000) == {"budget_limit": float("inf")}
    assert api.get_flight_cost("SFO", "LAX", "1" * 199_001, "economy") == {"travel_cost_list": [200.0]}
    assert api.verify_traveler_information(None, None, "9" * 199_000, "US")["verification_status"] is False
    assert time.perf_counter() - start < 2.0
