"""TradingBot: a stock-trading account with orders, a watch list and transaction history.

Behaviour-identical to the official ``trading_bot.py`` backend, including its quirks (listed
on the class). The default state and the long-context filler are read at run time from the
official sources (``DEFAULT_STATE`` in ``trading_bot.py``, the ``*_EXTENSION`` constants in
``long_context.py``); nothing here copies them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Optional

from envs._official import official_literal
from envs.base import Backend, StaticPayload, Template, seeded_random

_SOURCE = "trading_bot.py"
_FILLER = "long_context.py"

#: The backend's frozen clock (the official ``CURRENT_TIME``): every "now" is this moment.
_NOW = datetime(2024, 9, 1, 10, 30)
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_FORMAT = "%Y-%m-%d"

#: Company name → ticker. Amazon and Gorilla are known names whose tickers have no stock entry.
_TICKERS: Mapping[str, str] = MappingProxyType(
    {
        "Apple": "AAPL",
        "Google": "GOOG",
        "Tesla": "TSLA",
        "Microsoft": "MSFT",
        "Nvidia": "NVDA",
        "Zeta Corp": "ZETA",
        "Alpha Tech": "ALPH",
        "Omega Industries": "OMEG",
        "Quasar Ltd.": "QUAS",
        "Neptune Systems": "NEPT",
        "Synex Solutions": "SYNX",
        "Amazon": "AMZN",
        "Gorilla": "GORI",
    }
)

#: Sector → tickers, and the long-context filler list appended to each sector.
_SECTORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Technology": ("AAPL", "GOOG", "MSFT", "NVDA"),
        "Automobile": ("TSLA", "F", "GM"),
    }
)
_SECTOR_FILLER: Mapping[str, str] = MappingProxyType(
    {
        "Technology": "TECHNOLOGY_EXTENSION",
        "Automobile": "AUTOMOBILE_EXTENSION",
    }
)

#: Scenario keys in the order the official loader assigns them (this fixes ``vars()`` order).
_STATE_KEYS = (
    "orders",
    "account_info",
    "authenticated",
    "market_status",
    "order_counter",
    "stocks",
    "watch_list",
    "transaction_history",
)


@lru_cache(maxsize=None)
def _default_part(key: str) -> Template:
    """One key of the official ``DEFAULT_STATE`` as a template (fresh copies are cheap)."""
    return Template(official_literal(_SOURCE, "DEFAULT_STATE")[key])


def _default_seed() -> Any:
    return official_literal(_SOURCE, "DEFAULT_STATE")["random_seed"]


def _filler(name: str) -> Any:
    """A long-context constant, shared and read-only: it may only be placed in return values."""
    return official_literal(_FILLER, name)


@lru_cache(maxsize=4)
def _payload(name: str) -> StaticPayload:
    """A long-context list as a :class:`StaticPayload`: the executor encodes it once, not on
    every call (the moving averages are 2,000 floats each)."""
    return StaticPayload(_filler(name))


class TradingBot(Backend):
    """A simulated brokerage account.

    Compared state (in this order): ``orders`` (order id → order dict), ``account_info``
    (``account_id``, ``balance``, ``binding_card``), ``authenticated``, ``market_status``,
    ``order_counter`` (the id the next order gets), ``stocks`` (ticker → price, percent_change,
    volume, MA(5), MA(20)), ``watch_list``, ``transaction_history`` and ``long_context``.
    Defaults come from the official ``DEFAULT_STATE``: two orders (12345 completed, 12446
    pending), balance 10000.0, logged out, market "Closed", counter 12446, eleven stocks,
    watch list ``["NVDA"]``, no transactions, RNG seed 1053520.

    Reproduced quirks:

    - order ids given as digit strings in the scenario become ints;
    - ``cancel_order`` and ``add_to_watchlist`` need no login;
    - a buy order checks the balance but never deducts it; the stored order is "Open" while the
      reply says "Pending";
    - withdrawals need the market to be "Open", deposits do not;
    - transaction timestamps are drawn from the seeded RNG within one day after the frozen clock
      and converted with the local time zone;
    - some failures return a list instead of a dict (``get_watchlist``, ``get_order_history``,
      ``get_transaction_history`` when logged out) and, with ``long_context``, ``get_watchlist``
      returns a bare list;
    - several methods return the live state objects themselves (stock, account info, lists).
    """

    class_name = "TradingBot"
    doc_file = "trading_bot.json"
    stateless = False

    # The official constructor assigns no public attribute; ``load_scenario`` creates them all.
    orders: dict[Any, Any]
    account_info: dict[str, Any]
    authenticated: Any
    market_status: Any
    order_counter: Any
    stocks: dict[str, Any]
    watch_list: list[Any]
    transaction_history: list[Any]
    long_context: Any

    def __init__(self) -> None:
        """An unloaded instance; :meth:`load_scenario` sets the state and seeds the RNG."""
        self._random: random.Random | None = None

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        for key in _STATE_KEYS:
            value = config[key] if key in config else _default_part(key).fresh()
            if key == "orders":
                value = {_order_key(k): v for k, v in value.items()}
            setattr(self, key, value)
        self.long_context = long_context
        seed = config["random_seed"] if "random_seed" in config else _default_seed()
        self._random = seeded_random(seed)

    # -- helpers -------------------------------------------------------------------------------

    def _random_timestamp(self) -> str:
        """A moment within one day after the clock: one ``randint`` over epoch seconds, both
        ends computed (and the draw converted back) in the local time zone, as the official does."""
        low = int(_NOW.timestamp())
        high = int((_NOW + timedelta(days=1)).timestamp())
        return datetime.fromtimestamp(self._random.randint(low, high)).strftime(_TIMESTAMP_FORMAT)

    def _record(self, kind: str, amount: Any) -> None:
        self.transaction_history.append({"type": kind, "amount": amount, "timestamp": self._random_timestamp()})

    # -- clock and lookups ---------------------------------------------------------------------

    def get_current_time(self) -> dict[str, str]:
        return {"current_time": _NOW.strftime("%I:%M %p")}

    def get_symbol_by_name(self, name: str) -> dict[str, str]:
        return {"symbol": _TICKERS.get(name, "Stock not found")}

    def get_stock_info(self, symbol: str) -> Any:
        if symbol not in self.stocks:
            return {"error": f"Stock with symbol '{symbol}' not found."}
        if not self.long_context:
            return self.stocks[symbol]
        # Long context: a copy whose moving averages are replaced by the 2,000-value filler lists.
        stock = self.stocks[symbol].copy()
        stock["MA(5)"] = _payload("MA_5_EXTENSION")
        stock["MA(20)"] = _payload("MA_20_EXTENSION")
        return stock

    def get_available_stocks(self, sector: str) -> dict[str, list[str]]:
        tickers = list(_SECTORS.get(sector, ()))
        if self.long_context and tickers:
            tickers.extend(_filler(_SECTOR_FILLER[sector]))
        return {"stock_list": tickers}

    def filter_stocks_by_price(self, stocks: list[str], min_price: float, max_price: float) -> dict[str, list[str]]:
        # Unknown tickers count as price 0 (so a min_price <= 0 keeps them).
        kept = [
            symbol
            for symbol in stocks
            if self.stocks.get(symbol, {}).get("price", 0) >= min_price
            and self.stocks.get(symbol, {}).get("price", 0) <= max_price
        ]
        return {"filtered_stocks": kept}

    def notify_price_change(self, stocks: list[str], threshold: float) -> dict[str, str]:
        moved = [
            symbol
            for symbol in stocks
            if symbol in self.stocks and abs(self.stocks[symbol]["percent_change"]) >= threshold
        ]
        if not moved:
            return {"notification": "No significant price changes in the selected stocks."}
        return {"notification": f"Stocks {', '.join(moved)} have significant price changes."}

    # -- orders --------------------------------------------------------------------------------

    def get_order_details(self, order_id: int) -> Any:
        if order_id not in self.orders:
            return {
                "error": f"Order with ID {order_id} not found.Here is the list of orders_id: {list(self.orders.keys())}"
            }
        if not self.long_context:
            return self.orders[order_id]
        order = self.orders[order_id].copy()
        symbol = order["symbol"]
        metadata = {}
        for key, text in _filler("ORDER_DETAIL_EXTENSION").items():
            try:
                metadata[key] = text.format(symbol=symbol)
            except KeyError as exc:  # unreachable with the shipped texts; kept for fidelity
                return {"error": f"KeyError during formatting: {exc}"}
        order["metadata"] = metadata
        return order

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        if order_id not in self.orders:
            return {"error": f"Order with ID {order_id} not found."}
        order = self.orders[order_id]
        if order["status"] == "Completed":
            return {"error": f"Can't cancel order {order_id}. Order is already completed."}
        order["status"] = "Cancelled"
        return {"order_id": order_id, "status": "Cancelled"}

    def place_order(self, order_type: str, symbol: str, price: float, amount: int) -> dict[str, Any]:
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to place an order."}
        if symbol not in self.stocks:
            return {"error": f"Invalid stock symbol: {symbol}"}
        if price <= 0 or amount <= 0:
            return {"error": "Price and amount must be positive values."}
        if refusal := self._buy_refusal(order_type, price, amount):
            return refusal
        price = float(price)
        order_id = self.order_counter
        self.orders[order_id] = {
            "id": order_id,
            "order_type": order_type,
            "symbol": symbol,
            "price": price,
            "amount": amount,
            "status": "Open",
        }
        self.order_counter += 1
        # The stored order is "Open"; the reply says "Pending" (a simulated execution delay).
        return {
            "order_id": order_id,
            "order_type": order_type,
            "status": "Pending",
            "price": price,
            "amount": amount,
        }

    def _buy_refusal(self, order_type: str, price: float, amount: int) -> dict[str, Any] | None:
        """The refusal of a buy order the balance cannot cover, or None. Checked only: a buy
        order never reserves or deducts the money."""
        if order_type.lower() != "buy":
            return None
        cost = float(price) * int(amount)
        balance = self.account_info.get("balance", 0)
        if cost > balance:
            return {
                "error": f"Insufficient funds: required ${cost:.2f} but only "
                f"${self.account_info.get('balance', 0):.2f} available."
            }
        return None

    def get_order_history(self) -> Any:
        if not self.authenticated:
            return [{"error": "User not authenticated. Please log in to view order history."}]
        return {"history": list(self.orders.keys())}

    # -- account -------------------------------------------------------------------------------

    def trading_login(self, username: str, password: str) -> dict[str, str]:
        # Any credentials are accepted.
        if self.authenticated:
            return {"status": "Already logged in"}
        self.authenticated = True
        return {"status": "Logged in successfully"}

    def trading_get_login_status(self) -> dict[str, bool]:
        return {"status": bool(self.authenticated)}

    def trading_logout(self) -> dict[str, str]:
        if not self.authenticated:
            return {"status": "No user is currently logged in"}
        self.authenticated = False
        return {"status": "Logged out successfully"}

    def get_account_info(self) -> Any:
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to view account information."}
        return self.account_info

    def fund_account(self, amount: float) -> dict[str, Any]:
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to fund the account."}
        if amount <= 0:
            return {"error": "Funding amount must be positive."}
        self.account_info["balance"] += amount
        self._record("deposit", amount)
        return {"status": "Account funded successfully", "new_balance": self.account_info["balance"]}

    def withdraw_funds(self, amount: float) -> dict[str, Any]:
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to make a transaction."}
        if self.market_status != "Open":
            return {"error": "Market is closed. Transactions are not allowed."}
        if amount <= 0:
            return {"error": "Transaction amount must be positive."}
        if amount > self.account_info["balance"]:
            return {"error": "Insufficient funds for withdrawal."}
        self.account_info["balance"] -= amount
        self._record("withdrawal", amount)
        return {"status": "Withdrawal successful", "new_balance": self.account_info["balance"]}

    def get_transaction_history(self, start_date: Optional[str] = None, end_date: Optional[str] = None) -> Any:
        if not self.authenticated:
            return [{"error": "User not authenticated. Please log in to view transaction history."}]
        # Dates are day starts: a transaction later on ``end_date`` itself falls outside.
        start = datetime.strptime(start_date, _DATE_FORMAT) if start_date else datetime.min
        end = datetime.strptime(end_date, _DATE_FORMAT) if end_date else datetime.max
        selected = [
            entry
            for entry in self.transaction_history
            if start <= datetime.strptime(entry["timestamp"], _TIMESTAMP_FORMAT) <= end
        ]
        if self.long_context:
            selected.extend(_filler("TRANSACTION_HISTORY_EXTENSION"))
        return {"transaction_history": selected}

    # -- watch list ----------------------------------------------------------------------------

    def get_watchlist(self) -> Any:
        if not self.authenticated:
            return ["Error: User not authenticated. Please log in to view the watchlist."]
        if self.long_context:
            watched = self.watch_list.copy()
            watched.extend(_filler("WATCH_LIST_EXTENSION"))
            return watched  # a bare list, not {"watchlist": ...}
        return {"watchlist": self.watch_list}

    def add_to_watchlist(self, stock: str) -> dict[str, list[str]]:
        # No login needed; unknown tickers are silently ignored.
        if stock not in self.watch_list and stock in self.stocks:
            self.watch_list.append(stock)
        return {"watchlist": self.watch_list}

    def remove_stock_from_watchlist(self, symbol: str) -> dict[str, str]:
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to modify the watchlist."}
        if symbol not in self.watch_list:
            return {"error": f"Stock {symbol} not found in watchlist."}
        self.watch_list.remove(symbol)
        return {"status": f"Stock {symbol} removed from watchlist successfully."}


def _order_key(key: Any) -> Any:
    """Scenario order ids arrive as JSON strings: digit strings become ints."""
    return int(key) if isinstance(key, str) and key.isdigit() else key
