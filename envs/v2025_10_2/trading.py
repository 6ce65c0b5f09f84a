"""TradingBot as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Differences from the default release, each an override below:

- ``make_transaction(account_id, xact_type, amount)`` deposits or withdraws (later replaced by
  ``withdraw_funds``, which this release's docs do not list, so it is never dispatched);
- ``update_market_status`` and ``update_stock_price`` exist (later removed);
- ``place_order`` accepts a buy order whatever the balance;
- ``add_to_watchlist`` answers under the key ``symbol`` (later ``watchlist``);
- ``get_symbol_by_name`` does not know "Gorilla".
"""

from __future__ import annotations

from datetime import datetime, time
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

from envs.trading import _TICKERS
from envs.trading import TradingBot as TradingBotNow
from envs.v2025_10_2 import VERSION

#: The company → ticker table of this release: today's without the later "Gorilla" entry.
_TICKERS_THEN: Mapping[str, str] = MappingProxyType({name: t for name, t in _TICKERS.items() if name != "Gorilla"})

#: Trading hours, both ends included.
_MARKET_OPENS = time(9, 30)
_MARKET_CLOSES = time(16, 0)


class TradingBot(TradingBotNow):
    """TradingBot of bfcl-eval 2025.10.2.

    Further quirks of this release: ``make_transaction`` needs the market "Open" for deposits
    too, and checks the account id after the market but before the amount;
    ``update_stock_price`` stores the new price before computing the percent change (an old
    price of 0 raises after the price has changed) and needs no login.
    """

    data_version: ClassVar[str] = VERSION

    def get_symbol_by_name(self, name: str) -> dict[str, str]:
        # 2025.10.2: no "Gorilla" → GORI.
        return {"symbol": _TICKERS_THEN.get(name, "Stock not found")}

    def update_market_status(self, current_time_str: str) -> dict[str, str]:
        # The model sets the market status itself from a "HH:MM AM/PM" time (strptime errors raise).
        now = datetime.strptime(current_time_str, "%I:%M %p").time()
        self.market_status = "Open" if _MARKET_OPENS <= now <= _MARKET_CLOSES else "Closed"
        return {"status": self.market_status}

    def update_stock_price(self, symbol: str, new_price: float) -> dict[str, Any]:
        if symbol not in self.stocks:
            return {"error": f"Stock with symbol '{symbol}' not found."}
        if new_price <= 0:
            return {"error": "New price must be a positive value."}
        stock = self.stocks[symbol]
        old_price = stock["price"]
        stock["price"] = new_price  # stored as given (an int stays an int), before the division
        stock["percent_change"] = ((new_price - old_price) / old_price) * 100
        return {"symbol": symbol, "old_price": old_price, "new_price": new_price}

    def _buy_refusal(self, order_type: str, price: float, amount: int) -> dict[str, Any] | None:
        return None  # 2025.10.2: no check at all (the order type is not even read)

    def make_transaction(self, account_id: int, xact_type: str, amount: float) -> dict[str, Any]:
        # Checks in the official order: login, market, account id, amount, then the type.
        if not self.authenticated:
            return {"error": "User not authenticated. Please log in to make a transaction."}
        if self.market_status != "Open":
            return {"error": "Market is closed. Transactions are not allowed."}
        if account_id != self.account_info["account_id"]:
            return {"error": f"Account with ID {account_id} not found."}
        if amount <= 0:
            return {"error": "Transaction amount must be positive."}
        if xact_type == "deposit":
            self.account_info["balance"] += amount
            self._record("deposit", amount)
            return {"status": "Deposit successful", "new_balance": self.account_info["balance"]}
        if xact_type == "withdrawal":
            if amount > self.account_info["balance"]:
                return {"error": "Insufficient funds for withdrawal."}
            self.account_info["balance"] -= amount
            self._record("withdrawal", amount)
            return {"status": "Withdrawal successful", "new_balance": self.account_info["balance"]}
        return {"error": "Invalid transaction type. Use 'deposit' or 'withdrawal'."}

    def add_to_watchlist(self, stock: str) -> dict[str, list[str]]:
        # 2025.10.2: the watch list comes back under the key "symbol".
        if stock not in self.watch_list and stock in self.stocks:
            self.watch_list.append(stock)
        return {"symbol": self.watch_list}
