"""TradingBot and TravelAPI of bfcl-eval 2025.10.2 (the paper's release), compared with that
release's official classes: one or more tests per behaviour that differs from the default
release (``docs/data-versions.md``). Each fails against today's behaviour.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from envs.trading import _TICKERS
from envs.v2025_10_2.trading import TradingBot
from envs.v2025_10_2.travel import TravelAPI
from tests.oracle import call_both, compare_with_official, official_pair, require_official
from tests.release_oracle import only_on_release

pytestmark = [pytest.mark.release, only_on_release("2025.10.2")]

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def trading_pair(config: dict[str, Any] | None = None) -> tuple[TradingBot, Any]:
    require_official()
    return official_pair(TradingBot, config)


def travel_pair(config: dict[str, Any] | None = None) -> tuple[TravelAPI, Any]:
    require_official()
    return official_pair(TravelAPI, config)


# -- TradingBot ---------------------------------------------------------------------------------

STOCKS = ["AAPL", "GOOG", "TSLA", "MSFT", "NVDA", "ALPH", "OMEG", "QUAS", "NEPT", "SYNX", "ZETA"]
SYMBOLS = st.sampled_from([*STOCKS, "AMZN", "GORI", "F", "aapl", ""])
NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=-10.0, max_value=1e6, allow_nan=False),
)


@given(name=st.one_of(st.sampled_from([*_TICKERS, "gorilla", "Gorilla Inc."]), st.text(max_size=8)))
@PROPERTY
def test_get_symbol_by_name_does_not_know_gorilla(name: str) -> None:
    ours, theirs = trading_pair()
    call_both(ours, theirs, "get_symbol_by_name", name)


def test_gorilla_is_not_found() -> None:
    ours, theirs = trading_pair()
    assert json.loads(call_both(ours, theirs, "get_symbol_by_name", "Gorilla")) == {"symbol": "Stock not found"}


@given(stocks=st.lists(SYMBOLS, min_size=1, max_size=5), authenticated=st.booleans())
@PROPERTY
def test_add_to_watchlist_answers_under_symbol(stocks: list[str], authenticated: bool) -> None:
    ours, theirs = trading_pair({"authenticated": authenticated})
    for stock in stocks:
        assert list(json.loads(call_both(ours, theirs, "add_to_watchlist", stock))) == ["symbol"]


@given(
    order_type=st.sampled_from(["Buy", "buy", "BUY", "Sell", "sell", "hold"]),
    symbol=SYMBOLS,
    price=NUMBERS,
    amount=st.integers(min_value=-2, max_value=10**5),
    balance=st.sampled_from([0.0, 10.0, 10000.0]),
)
@PROPERTY
def test_buy_orders_ignore_the_balance(order_type: str, symbol: str, price: Any, amount: int, balance: float) -> None:
    config = {"authenticated": True, "account_info": {"account_id": 12345, "balance": balance, "binding_card": 1}}
    ours, theirs = trading_pair(config)
    call_both(ours, theirs, "place_order", order_type, symbol, price, amount)


def test_a_buy_order_beyond_the_balance_is_placed() -> None:
    ours, theirs = trading_pair({"authenticated": True})
    placed = json.loads(call_both(ours, theirs, "place_order", "Buy", "NVDA", 500.0, 1000))
    assert placed["status"] == "Pending" and ours.account_info["balance"] == 10000.0
    call_both(ours, theirs, "get_order_details", placed["order_id"])


@pytest.mark.parametrize("order_type", [2.345, None, ["Buy"], "buy"])
def test_the_order_type_is_never_read(order_type: object) -> None:
    """2025.10.2 has no buy check, so an order type of any type is stored as given (today's
    release calls ``order_type.lower()``: an execution error for a non-string)."""
    ours, theirs = trading_pair({"authenticated": True})
    placed = json.loads(call_both(ours, theirs, "place_order", order_type, "NVDA", 1.0, 10**6))
    assert placed["status"] == "Pending"
    call_both(ours, theirs, "get_order_details", placed["order_id"])


TRANSACTION = st.tuples(
    st.sampled_from([12345, 1, "12345"]),
    st.sampled_from(["deposit", "withdrawal", "Deposit", "transfer"]),
    st.one_of(st.integers(min_value=-5, max_value=30000), st.floats(min_value=-5.0, max_value=30000.0)),
)


@given(
    transactions=st.lists(TRANSACTION, min_size=1, max_size=6),
    authenticated=st.booleans(),
    market=st.sampled_from(["Open", "Closed"]),
    seed=st.integers(min_value=0, max_value=10**6),
)
@PROPERTY
def test_make_transaction_deposits_and_withdraws(
    transactions: list[tuple[Any, str, Any]], authenticated: bool, market: str, seed: int
) -> None:
    ours, theirs = trading_pair({"authenticated": authenticated, "market_status": market, "random_seed": seed})
    for account_id, kind, amount in transactions:
        call_both(ours, theirs, "make_transaction", account_id, kind, amount)
    call_both(ours, theirs, "get_transaction_history")


def test_make_transaction_through_the_executor() -> None:
    calls = [
        "make_transaction(account_id=12345, xact_type='deposit', amount=100.0)",  # market closed
        "trading_login(username='u', password='p')",
        "make_transaction(account_id=12345, xact_type='deposit', amount=100.0)",
        "update_market_status(current_time_str='10:30 AM')",
        "make_transaction(account_id=99, xact_type='deposit', amount=100.0)",
        "make_transaction(account_id=12345, xact_type='deposit', amount=100.0)",
        "make_transaction(account_id=12345, xact_type='withdrawal', amount=50000.0)",
        "make_transaction(account_id=12345, xact_type='withdrawal', amount=25.5)",
        "make_transaction(account_id=12345, xact_type='refund', amount=1.0)",
        "withdraw_funds(amount=1.0)",  # not a tool of this release
        "get_transaction_history()",
    ]
    results = compare_with_official("TradingBot", calls)
    assert json.loads(results[5]) == {"status": "Deposit successful", "new_balance": 10100.0}
    assert results[9] == "Error during execution: name 'withdraw_funds' is not defined"


TIMES = st.one_of(
    st.builds(
        "{:02d}:{:02d} {}".format,
        st.integers(min_value=0, max_value=13),
        st.integers(min_value=0, max_value=60),
        st.sampled_from(["AM", "PM", "am", "pm", "XM"]),
    ),
    st.text(max_size=10),
)


@given(times=st.lists(TIMES, min_size=1, max_size=4), market=st.sampled_from(["Open", "Closed"]))
@PROPERTY
def test_update_market_status_from_a_time(times: list[str], market: str) -> None:
    ours, theirs = trading_pair({"market_status": market})
    for current in times:
        call_both(ours, theirs, "update_market_status", current)


@pytest.mark.parametrize("current", ["09:29 AM", "09:30 AM", "12:00 PM", "04:00 PM", "04:01 PM", "10:30"])
def test_update_market_status_boundaries(current: str) -> None:
    ours, theirs = trading_pair({"market_status": "Closed"})
    call_both(ours, theirs, "update_market_status", current)


@given(updates=st.lists(st.tuples(SYMBOLS, NUMBERS), min_size=1, max_size=4))
@PROPERTY
def test_update_stock_price(updates: list[tuple[str, Any]]) -> None:
    ours, theirs = trading_pair()
    for symbol, price in updates:
        call_both(ours, theirs, "update_stock_price", symbol, price)
        if symbol in ours.stocks:
            call_both(ours, theirs, "get_stock_info", symbol)


def test_update_stock_price_of_a_zero_priced_stock_raises_after_storing() -> None:
    stock = {"price": 0, "percent_change": 0.0, "volume": 1.0, "MA(5)": 1.0, "MA(20)": 1.0}
    ours, theirs = trading_pair({"stocks": {"ZERO": stock}})
    assert call_both(ours, theirs, "update_stock_price", "ZERO", 5).startswith("ZeroDivisionError")
    assert ours.stocks["ZERO"]["price"] == 5


# -- TravelAPI ----------------------------------------------------------------------------------

CARD = {
    "card_number": "4111111111111111",
    "expiration_date": "12/2030",
    "cardholder_name": "Ada Byron",
    "card_verification_number": 123,
    "balance": 5000.0,
}
BOOKING = {
    "card_id": "card1",
    "travel_date": "2024-12-15",
    "travel_from": "SFO",
    "travel_to": "LAX",
    "travel_class": "economy",
    "travel_cost": 200.0,
    "transaction_id": "12345678",
}
LOGIN = ("client", "secret", "refresh", "read_write", "Ada", "Byron")


def _secured_arguments(tool: str, token: Any) -> tuple[Any, ...]:
    """Arguments for one call of a token-checked tool that succeeds on a right token."""
    return {
        "register_credit_card": (token, "5500000000000004", "01/2031", "Ada Byron", 456),
        "get_credit_card_balance": (token, "card1"),
        "book_flight": (token, "card1", "2024-12-15", "SFO", "LAX", "economy"),
        "retrieve_invoice": (token, "b1"),
        "cancel_booking": (token, "b1"),
        "set_budget_limit": (token, 100000),
        "purchase_insurance": (token, "comprehensive", "b1", 50.0, "card1"),
    }[tool]


SECURED = [
    "register_credit_card",
    "get_credit_card_balance",
    "book_flight",
    "retrieve_invoice",
    "cancel_booking",
    "set_budget_limit",
    "purchase_insurance",
]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(SECURED), st.sampled_from(["right", "wrong", "none"])),
        st.just(("authenticate_travel", "")),
        st.just(("travel_get_login_status", "")),
    ),
    min_size=1,
    max_size=10,
)
START = st.one_of(
    st.just({}),  # never logged in: token_expires_in is None
    st.builds(
        lambda expires, token: {"token_expires_in": expires, "access_token": token},
        st.integers(min_value=-2, max_value=4),
        st.sampled_from(["tok", None]),
    ),
)


@given(start=START, steps=STEPS, seed=st.integers(min_value=0, max_value=10**6))
@PROPERTY
def test_wrong_tokens_count_the_token_down(start: dict[str, Any], steps: list[tuple[str, str]], seed: int) -> None:
    config = {"credit_card_list": {"card1": dict(CARD)}, "booking_record": {"b1": dict(BOOKING)}, "random_seed": seed}
    ours, theirs = travel_pair({**config, **start})
    for tool, kind in steps:
        if tool == "authenticate_travel":
            call_both(ours, theirs, tool, *LOGIN)
        elif tool == "travel_get_login_status":
            call_both(ours, theirs, tool)
        else:
            token = {"right": ours.access_token, "wrong": "000000", "none": None}[kind]
            call_both(ours, theirs, tool, *_secured_arguments(tool, token))


@pytest.mark.parametrize("tool", SECURED)
def test_two_wrong_tokens_expire_the_token(tool: str) -> None:
    ours, theirs = travel_pair({"credit_card_list": {"card1": dict(CARD)}, "booking_record": {"b1": dict(BOOKING)}})
    token = json.loads(call_both(ours, theirs, "authenticate_travel", *LOGIN))["access_token"]
    call_both(ours, theirs, tool, *_secured_arguments(tool, "000000"))
    assert ours.token_expires_in == 1
    call_both(ours, theirs, tool, *_secured_arguments(tool, "000000"))
    assert ours.token_expires_in == 0
    assert "Token expired" in call_both(ours, theirs, tool, *_secured_arguments(tool, token))
    assert json.loads(call_both(ours, theirs, "travel_get_login_status")) == {"status": False}


def test_a_wrong_token_before_any_login_through_the_executor() -> None:
    wrong = "access_token='123456'"
    calls = [
        f"register_credit_card({wrong}, card_number='4111', expiration_date='12/2030', "
        "cardholder_name='Ada', card_verification_number=1)",
        f"get_credit_card_balance({wrong}, card_id='card1')",
        f"book_flight({wrong}, card_id='card1', travel_date='2024-12-15', travel_from='SFO', "
        "travel_to='LAX', travel_class='economy')",
        f"retrieve_invoice({wrong}, booking_id='b1')",
        f"cancel_booking({wrong}, booking_id='b1')",
        f"set_budget_limit({wrong}, budget_limit=100.0)",
        f"purchase_insurance({wrong}, insurance_type='full', booking_id='b1', insurance_cost=5.0, card_id='card1')",
        "get_booking_history(access_token='123456')",  # not a tool of this release
    ]
    config = {"credit_card_list": {"card1": dict(CARD)}, "booking_record": {"b1": dict(BOOKING)}}
    results = compare_with_official("TravelAPI", calls, config)
    assert results[0] == '{"error": "Token not initialized"}'
    assert set(results[1:7]) == {"Error during execution: unsupported operand type(s) for -=: 'NoneType' and 'int'"}
    assert results[7] == "Error during execution: name 'get_booking_history' is not defined"


CURRENCIES = ["RMB", "EUR", "JPY", "GBP", "CAD", "AUD", "INR", "RUB", "BRL", "MXN", "XXX"]
# Both directions of every USD rate, and pairs without a rate (a ValueError).
CURRENCY_PAIRS = [("USD", c) for c in CURRENCIES] + [(c, "USD") for c in CURRENCIES] + [("EUR", "JPY"), ("USD", "USD")]


@given(
    pair=st.sampled_from(CURRENCY_PAIRS),
    value=st.one_of(
        st.integers(min_value=-(10**6), max_value=10**6),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.booleans(),
        st.sampled_from(["5", ""]),
    ),
)
@example(pair=("USD", "JPY"), value=2)
@PROPERTY
def test_compute_exchange_rate_keeps_ints(pair: tuple[str, str], value: Any) -> None:
    ours, theirs = travel_pair()
    call_both(ours, theirs, "compute_exchange_rate", *pair, value)


def test_usd_to_an_int_rate_is_an_int() -> None:
    ours, theirs = travel_pair()
    assert call_both(ours, theirs, "compute_exchange_rate", "USD", "RMB", 3) == '{"exchanged_value": 21}'
    assert call_both(ours, theirs, "compute_exchange_rate", "USD", "EUR", 5) == '{"exchanged_value": 4.0}'
