"""TradingBot: the reproduced quirks, compared directly with the official class."""

from __future__ import annotations

from typing import Any

import pytest

from envs._official import official_literal
from envs.trading import TradingBot
from tests.oracle import call_both, official_pair, require_official, state_differences

OFFICIAL_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code.trading_bot"
PUBLIC = [
    "orders",
    "account_info",
    "authenticated",
    "market_status",
    "order_counter",
    "stocks",
    "watch_list",
    "transaction_history",
    "long_context",
]


def pair(config: dict[str, Any] | None = None, long_context: bool = False) -> tuple[TradingBot, Any]:
    require_official()
    return official_pair(TradingBot, config, long_context)


def test_defaults_attribute_order_and_independent_copies() -> None:
    ours, theirs = pair()
    assert list(ours.public_state()) == PUBLIC
    assert state_differences(ours, theirs) == []
    assert TradingBot().public_state() == {}  # like the official constructor: nothing public yet
    other = TradingBot()
    other.load_scenario({})
    ours.stocks["AAPL"]["price"] = 1.0
    ours.watch_list.append("TSLA")
    assert other.stocks["AAPL"]["price"] == 227.16 and other.watch_list == ["NVDA"]


def test_digit_string_order_ids_become_ints() -> None:
    config = {
        "orders": {
            "7": {"id": 7, "order_type": "Buy", "symbol": "AAPL", "price": 1.0, "amount": 1, "status": "Open"},
            "x1": {
                "id": "x1",
                "order_type": "Sell",
                "symbol": "GOOG",
                "price": 2.0,
                "amount": 2,
                "status": "Completed",
            },
        }
    }
    ours, theirs = pair(config)
    assert list(ours.orders) == [7, "x1"]
    call_both(ours, theirs, "get_order_details", 7)
    call_both(ours, theirs, "get_order_details", "7")  # not found: the error lists the ids
    call_both(ours, theirs, "cancel_order", "x1")  # completed: refused
    call_both(ours, theirs, "cancel_order", 7)  # no login needed
    call_both(ours, theirs, "get_order_details", [7])  # unhashable: raises


def test_orders_balance_is_checked_but_never_deducted() -> None:
    ours, theirs = pair({"account_info": {"account_id": 1, "balance": 100, "binding_card": 2}})
    call_both(ours, theirs, "place_order", "Buy", "ZETA", 22.09, 3)  # not logged in
    call_both(ours, theirs, "trading_login", "u", "p")
    call_both(ours, theirs, "trading_login", "u", "p")  # already logged in
    for args in [
        ("Buy", "ZETA", 22.09, 5),
        ("buy", "ZETA", 22.09, 4),
        ("SELL", "AAPL", 10, 1000),
        ("Buy", "XXXX", 1, 1),
        ("Buy", "ZETA", 0, 1),
        ("Buy", "ZETA", 2.5, 2.9),
        (5, "ZETA", 1, 1),
        ("Buy", "ZETA", "1", 1),
    ]:
        call_both(ours, theirs, "place_order", *args)
    assert ours.account_info["balance"] == 100
    assert ours.orders[12446 + 1]["status"] == "Open"  # the reply said "Pending"
    call_both(ours, theirs, "get_order_history")


def test_transactions_use_the_seeded_clock_and_market_gate() -> None:
    ours, theirs = pair({"random_seed": 42})
    call_both(ours, theirs, "get_current_time")
    call_both(ours, theirs, "fund_account", 10)  # not logged in
    call_both(ours, theirs, "trading_login", "u", "p")
    for amount in (10, 0, -1, 2.5, True):
        call_both(ours, theirs, "fund_account", amount)
    call_both(ours, theirs, "withdraw_funds", 5)  # market closed
    ours.market_status = theirs.market_status = "Open"
    for amount in (5, 10**9, 0.25):
        call_both(ours, theirs, "withdraw_funds", amount)
    assert len(ours.transaction_history) == 5
    for start, end in [
        (None, None),
        ("2024-09-01", "2024-09-03"),
        ("2024-09-02", None),
        ("", "2024-09-01"),
        ("bad", None),
        (5, None),
    ]:
        call_both(ours, theirs, "get_transaction_history", start, end)
    call_both(ours, theirs, "fund_account", "5")  # raises TypeError
    call_both(ours, theirs, "trading_logout")
    call_both(ours, theirs, "trading_logout")
    call_both(ours, theirs, "get_transaction_history")  # a list when logged out


def test_watch_list_and_lookups() -> None:
    ours, theirs = pair()
    call_both(ours, theirs, "get_watchlist")  # a list holding an error string when logged out
    call_both(ours, theirs, "add_to_watchlist", "TSLA")  # no login needed
    call_both(ours, theirs, "add_to_watchlist", "NOPE")  # unknown: ignored
    call_both(ours, theirs, "add_to_watchlist", ["TSLA"])  # unhashable: raises
    call_both(ours, theirs, "remove_stock_from_watchlist", "TSLA")
    call_both(ours, theirs, "trading_login", "u", "p")
    call_both(ours, theirs, "remove_stock_from_watchlist", "TSLA")
    call_both(ours, theirs, "remove_stock_from_watchlist", "TSLA")
    call_both(ours, theirs, "get_watchlist")
    for name in ("Apple", "Amazon", "Gorilla", "Unknown", ["x"]):
        call_both(ours, theirs, "get_symbol_by_name", name)
    for sector in ("Technology", "Automobile", "Energy"):
        call_both(ours, theirs, "get_available_stocks", sector)
    call_both(ours, theirs, "filter_stocks_by_price", ["AAPL", "NOPE", "ZETA"], 0, 300)
    call_both(ours, theirs, "filter_stocks_by_price", "AAPL", -1, 300)  # a string is iterated
    call_both(ours, theirs, "filter_stocks_by_price", ["AAPL"], "1", 300)
    call_both(ours, theirs, "notify_price_change", ["AAPL", "TSLA", "NOPE"], 0.15)
    call_both(ours, theirs, "notify_price_change", ["AAPL"], 5)
    call_both(ours, theirs, "get_stock_info", "AAPL")
    call_both(ours, theirs, "get_stock_info", "NOPE")
    assert ours.get_stock_info("AAPL") is ours.stocks["AAPL"]  # the live dict itself
    call_both(ours, theirs, "get_account_info")


def test_long_context_injection_stays_out_of_state() -> None:
    ours, theirs = pair(
        {
            "authenticated": True,
            "transaction_history": [{"type": "deposit", "amount": 1.0, "timestamp": "2024-09-01 11:00:00"}],
        },
        long_context=True,
    )
    filler_sizes = {
        name: len(official_literal("long_context.py", name))
        for name in (
            "WATCH_LIST_EXTENSION",
            "TECHNOLOGY_EXTENSION",
            "AUTOMOBILE_EXTENSION",
            "TRANSACTION_HISTORY_EXTENSION",
        )
    }
    for _ in range(2):  # repeated calls must not grow anything
        watch = call_both(ours, theirs, "get_watchlist")
        assert watch.startswith("['NVDA', ")  # a bare list, not a dict
        call_both(ours, theirs, "get_available_stocks", "Technology")
        call_both(ours, theirs, "get_available_stocks", "Automobile")
        call_both(ours, theirs, "get_available_stocks", "Energy")
        call_both(ours, theirs, "get_transaction_history", "2024-09-01")
        info = ours.get_stock_info("GOOG")
        assert len(info["MA(5)"]) == 2000 and ours.stocks["GOOG"]["MA(5)"] == 2835.67
        call_both(ours, theirs, "get_stock_info", "GOOG")
        call_both(ours, theirs, "get_order_details", 12446)
        assert "metadata" not in ours.orders[12446]
    assert ours.watch_list == ["NVDA"]
    assert len(ours.transaction_history) == 1
    for name, size in filler_sizes.items():
        assert len(official_literal("long_context.py", name)) == size


@pytest.mark.parametrize("seed", [1053520, 0, 7])
def test_rng_sequence_matches(seed: int) -> None:
    ours, theirs = pair({"random_seed": seed, "authenticated": True, "market_status": "Open"})
    for step in range(6):
        call_both(ours, theirs, "fund_account" if step % 2 else "withdraw_funds", 3 + step)
