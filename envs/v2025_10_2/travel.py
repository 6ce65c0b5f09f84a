"""TravelAPI as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Differences from the default release, each an override below:

- a wrong access token counts the public ``token_expires_in`` down, in the seven token-checked
  tools (``register_credit_card``, ``get_credit_card_balance``, ``book_flight``,
  ``retrieve_invoice``, ``cancel_booking``, ``set_budget_limit``, ``purchase_insurance``): two
  bad calls after a login expire the token, and before any login (``token_expires_in`` is
  None) the countdown raises a TypeError in all of them but ``register_credit_card``, which
  answers "Token not initialized" first;
- ``compute_exchange_rate`` returns ``value * rate`` unconverted (an int for an int value and
  an int rate) from USD;
- ``get_booking_history`` does not exist (this release's docs do not list it, so it is never
  dispatched).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from envs.travel import TravelAPI as TravelAPINow
from envs.travel import _exchange_rates
from envs.v2025_10_2 import VERSION


class TravelAPI(TravelAPINow):
    """TravelAPI of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def _token_error(self, access_token: Any) -> Optional[str]:
        # 2025.10.2: a wrong token counts the token down. Plain ``-= 1`` on purpose: an unset
        # (None) countdown raises the same TypeError as the official, with no state change.
        if self.token_expires_in == 0:
            return "Token expired"
        if access_token != self.access_token:
            self.token_expires_in -= 1
            return "Invalid access token"
        return None

    def compute_exchange_rate(self, base_currency: str, target_currency: str, value: float) -> dict[str, Any]:
        for (usd, other), rate in _exchange_rates().items():
            if base_currency == usd and target_currency == other:
                # 2025.10.2: no float(): 3 USD → RMB is the int 21 (and a str value repeats).
                return {"exchanged_value": value * rate}
            if base_currency == other and target_currency == usd:
                return {"exchanged_value": round(value / rate, 2)}
        raise ValueError("No available exchange rate for the given currencies.")
