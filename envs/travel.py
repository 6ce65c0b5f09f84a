"""TravelAPI: flight booking, credit cards, budget and travel insurance (BFCL's ``travel_booking``).

Behaviour-identical to the official ``TravelAPI``: same result dicts (key order, int vs float),
same error texts, same exceptions, and the same calls on the seeded RNG in the same order, so
that generated ids and balances agree.

The large tables (route fares, exchange rates, city → airport map, airport list, long-context
cards and bookings) are read from the official distribution at run time, never retyped here.
"""

from __future__ import annotations

import random
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping, Optional

from envs._official import official_literal
from envs.base import Backend, clone, official_template, seeded_random

_SOURCE = "travel_booking.py"
_LONG_CONTEXT = "long_context.py"

# Class multipliers of the fare (the official spells them as an if/elif chain). Compared with
# ``==`` in this order, not looked up by hash, so an unhashable class is simply "invalid".
_CLASS_FACTORS: tuple[tuple[str, int], ...] = (("economy", 1), ("business", 2), ("first", 5))

# See ``TravelAPI._booking_problem``: insertion order of the valid-class set.
_CLASS_ORDER_OF_OFFICIAL_SET = ("first", "economy", "business")

_SUPPORT_REPLY = (
    "Thank you for contacting customer support. Your message has been received and we will get back to you shortly."
)


def _today() -> datetime:
    """The date that traveller ages are computed against (the official uses the real clock)."""
    return datetime.today()


def _fares() -> dict[tuple[str, str], int]:
    """Base fare of every directed route, in the official table's order (read-only)."""
    return official_literal(_SOURCE, "TravelAPI.get_flight_cost.base_costs")


def _exchange_rates() -> dict[tuple[str, str], float]:
    """USD → currency rates, in the official order (read-only)."""
    return official_literal(_SOURCE, "TravelAPI.compute_exchange_rate.exchange_rates")


def _city_airports() -> dict[str, str]:
    """City name → nearest airport code (read-only)."""
    return official_literal(_SOURCE, "TravelAPI.get_nearest_airport_by_city.airport_map")


@lru_cache(maxsize=2)
def _flat_extension(name: str) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """A long-context table (``CREDIT_CARD_EXTENSION`` or ``BOOKING_RECORD_EXTENSION``) as
    ``(key, fields)`` pairs, in order. Every field value is an immutable scalar, so
    ``dict(fields)`` is an independent copy (several times cheaper than a deep copy)."""
    entries = []
    for key, record in official_literal(_LONG_CONTEXT, name).items():
        fields = tuple(record.items())
        if not all(type(value) in (str, int, float, bool, type(None)) for _, value in fields):
            raise TypeError(f"long-context entry {key!r} of {name} is not flat")
        entries.append((key, fields))
    return tuple(entries)


@lru_cache(maxsize=1)
def _airport_codes() -> tuple[str, ...]:
    """The 23 codes the official ``list_all_airports`` returns, in its order."""
    return tuple(official_literal(_SOURCE, "TravelAPI.list_all_airports.return"))


class TravelAPI(Backend):
    """The travel booking system.

    Compared state (public attributes, in the official order) and defaults:
    ``credit_card_list`` ``{}``, ``booking_record`` ``{}``, ``access_token`` / ``token_type`` /
    ``token_expires_in`` / ``token_scope`` / ``user_first_name`` / ``user_last_name`` /
    ``budget_limit`` ``None``, and ``long_context`` (the load flag). The RNG is seeded with
    ``random_seed`` (default 141053).

    In long-context mode the official long-context cards and bookings are merged into the state
    at load time (existing keys win), ``get_flight_cost`` lists every route's cost and
    ``book_flight`` returns the whole booking record.
    """

    class_name = "TravelAPI"
    doc_file = "travel_booking.json"
    stateless = False

    # The scenario keys read by load_scenario (``random_seed`` aside); __init__ fixes the
    # order of the public attributes in ``vars()``, which is the official order.
    _STATE_KEYS = (
        "credit_card_list",
        "booking_record",
        "access_token",
        "token_type",
        "token_expires_in",
        "token_scope",
        "user_first_name",
        "user_last_name",
        "budget_limit",
    )

    def __init__(self) -> None:
        self.credit_card_list: dict[str, dict[str, Any]] = {}
        self.booking_record: dict[str, dict[str, Any]] = {}
        self.access_token: Optional[str] = None
        self.token_type: Optional[str] = None
        self.token_expires_in: Optional[int] = None
        self.token_scope: Optional[str] = None
        self.user_first_name: Optional[str] = None
        self.user_last_name: Optional[str] = None
        self.budget_limit: Optional[float] = None
        self.long_context: bool = False
        self._random: Optional[random.Random] = None  # seeded by load_scenario

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        defaults = official_template(_SOURCE, "DEFAULT_STATE").fresh()
        self._random = seeded_random(config.get("random_seed", defaults["random_seed"]))
        for key in self._STATE_KEYS:
            setattr(self, key, config.get(key, defaults[key]))
        self.long_context = long_context
        if long_context:
            self._merge_missing(self.credit_card_list, "CREDIT_CARD_EXTENSION")
            self._merge_missing(self.booking_record, "BOOKING_RECORD_EXTENSION")

    @staticmethod
    def _merge_missing(target: dict[str, Any], extension_name: str) -> None:
        """Add the long-context entries whose keys the scenario does not already have.

        The official inserts the shared module-level dicts themselves (so a booking in one
        episode changes the cards of every later one in the process); each episode gets its
        own copies here.
        """
        for key, fields in _flat_extension(extension_name):
            if key not in target:
                target[key] = dict(fields)

    # -- private helpers ----------------------------------------------------------------------

    def _token_error(self, access_token: Any) -> Optional[str]:
        """The token check shared by the secured tools, or None when it passes. Only
        ``register_credit_card`` also rejects an unset token: elsewhere an unset token simply
        matches ``access_token=None``, as in the official checks."""
        if self.token_expires_in == 0:
            return "Token expired"
        if access_token != self.access_token:
            return "Invalid access token"
        return None

    @staticmethod
    def _fare_factors(travel_from: Any, travel_to: Any, travel_date: Any, travel_class: Any) -> tuple[int, int]:
        """(class factor, date multiplier), after the route and class checks of the official
        ``get_flight_cost``, in its order; raises its ValueErrors."""
        if (travel_from, travel_to) not in _fares():
            raise ValueError("No available route for the given airports.")
        for name, factor in _CLASS_FACTORS:  # noqa: B007 (factor is read after the break)
            if travel_class == name:
                break
        else:
            raise ValueError("Invalid travel class. Options are: economy, business, first.")
        # Any iterable date works: its digit characters (or digit strings) are summed.
        digit_sum = sum(int(char) for char in travel_date if char.isdigit())
        return factor, (2 if digit_sum % 2 == 0 else 1)

    def _route_cost(self, travel_from: str, travel_to: str, travel_date: str, travel_class: str) -> float:
        factor, multiplier = self._fare_factors(travel_from, travel_to, travel_date, travel_class)
        return float(_fares()[(travel_from, travel_to)] * factor * multiplier)

    # -- tools --------------------------------------------------------------------------------

    def authenticate_travel(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        grant_type: str,
        user_first_name: str,
        user_last_name: str,
    ) -> dict[str, Any]:
        self.token_expires_in = 2
        self.access_token = str(self._random.randint(100000, 999999))
        self.token_type = "Bearer"
        self.token_scope = grant_type
        self.user_first_name = user_first_name
        self.user_last_name = user_last_name
        return {"expires_in": 2, "access_token": self.access_token, "token_type": "Bearer", "scope": grant_type}

    def travel_get_login_status(self) -> dict[str, bool]:
        logged_out = self.token_expires_in is None or self.token_expires_in == 0
        return {"status": not logged_out}

    def get_budget_fiscal_year(
        self,
        lastModifiedAfter: Optional[str] = None,
        includeRemoved: Optional[str] = None,
    ) -> dict[str, str]:
        return {"budget_fiscal_year": "2018"}

    def register_credit_card(
        self,
        access_token: str,
        card_number: str,
        expiration_date: str,
        cardholder_name: str,
        card_verification_number: int,
    ) -> dict[str, Any]:
        if self.token_expires_in is None:
            return {"error": "Token not initialized"}
        error = self._token_error(access_token)
        if error:
            return {"error": error}
        # Quirk: the card *number* is looked up among the card *ids*.
        if card_number in self.credit_card_list:
            return {"error": "Card already registered"}
        card_id = str(self._random.randint(100000000000, 999999999999))
        self.credit_card_list[card_id] = {
            "card_number": card_number,
            "expiration_date": expiration_date,
            "cardholder_name": cardholder_name,
            "card_verification_number": card_verification_number,
            "balance": self._random.randint(10000, 99999),  # drawn after the id
        }
        return {"card_id": card_id}

    def get_flight_cost(
        self, travel_from: str, travel_to: str, travel_date: str, travel_class: str
    ) -> dict[str, list[float]]:
        factor, multiplier = self._fare_factors(travel_from, travel_to, travel_date, travel_class)
        fares = _fares()
        if self.long_context:
            # Long context: the cost of every route with this class and date, in table order.
            costs = [float(base * factor * multiplier) for base in fares.values()]
        else:
            costs = [float(fares[(travel_from, travel_to)] * factor * multiplier)]
        return {"travel_cost_list": costs}

    def get_credit_card_balance(self, access_token: str, card_id: str) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"error": error}
        if card_id not in self.credit_card_list:
            known = str(list(self.credit_card_list.keys()))
            return {"error": "Card not registered. Here are a list of card_id's: " + known}
        return {"card_balance": self.credit_card_list[card_id]["balance"]}

    def book_flight(
        self,
        access_token: str,
        card_id: str,
        travel_date: str,
        travel_from: str,
        travel_to: str,
        travel_class: str,
    ) -> dict[str, Any]:
        problem = self._booking_problem(access_token, card_id, travel_date, travel_from, travel_to, travel_class)
        if problem is not None:
            return {"booking_status": False, "error": problem}
        try:
            travel_cost = self._route_cost(travel_from, travel_to, travel_date, travel_class)
        except ValueError as exc:
            return {"booking_status": False, "error": str(exc)}
        card = self.credit_card_list[card_id]
        if card["balance"] < travel_cost:
            return {"booking_status": False, "error": "Insufficient funds"}
        # Quirk: the *balance* (not the cost) is compared with the budget limit.
        if self.budget_limit is not None and card["balance"] < self.budget_limit:
            return {"booking_status": False, "error": "Balance is less than budget limit"}
        card["balance"] -= travel_cost
        booking_id = str(self._random.randint(1000000, 9999999))
        transaction_id = str(self._random.randint(10000000, 99999999))
        self.booking_record[booking_id] = {
            "card_id": card_id,
            "travel_date": travel_date,
            "travel_from": travel_from,
            "travel_to": travel_to,
            "travel_class": travel_class,
            "travel_cost": travel_cost,
            "transaction_id": transaction_id,
        }
        return {
            "booking_id": booking_id,
            "transaction_id": transaction_id,
            "booking_status": True,
            "booking_history": self.booking_record if self.long_context else {},
        }

    def _booking_problem(
        self, access_token: Any, card_id: Any, travel_date: Any, travel_from: Any, travel_to: Any, travel_class: Any
    ) -> Optional[str]:
        """The official pre-checks of ``book_flight``, in order; None when they all pass."""
        error = self._token_error(access_token)
        if error:
            return error
        if card_id not in self.credit_card_list:
            return "Card not registered"
        if "balance" not in self.credit_card_list[card_id]:
            return "Balance not found"
        airports = _airport_codes()
        if travel_from not in airports:
            return f"Invalid departure airport code: {travel_from}"
        if travel_to not in airports:
            return f"Invalid destination airport code: {travel_to}"
        try:
            datetime.strptime(travel_date, "%Y-%m-%d")  # a non-string raises TypeError, as official
        except ValueError:
            return "Invalid date format. Use YYYY-MM-DD."
        # The repr of this set depends on the hash seed and on the insertion order. The official
        # set literal is a frozenset constant that its .pyc stores (and reloads) in marshal's
        # order: first, economy, business. Inserting in that order, at run time, gives the same
        # text as the installed official module for every PYTHONHASHSEED, whether or not this
        # module itself runs from a .pyc.
        valid_classes = set(_CLASS_ORDER_OF_OFFICIAL_SET)
        if travel_class not in valid_classes:
            return f"Invalid travel class. Must be one of {valid_classes}"
        return None

    def retrieve_invoice(
        self,
        access_token: str,
        booking_id: Optional[str] = None,
        insurance_id: Optional[str] = None,
    ) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"error": error}
        if booking_id not in self.booking_record:
            return {"error": "Booking not found"}
        record = self.booking_record[booking_id]
        invoice = {"booking_id": booking_id}
        for field in ("travel_date", "travel_from", "travel_to", "travel_class", "travel_cost", "transaction_id"):
            invoice[field] = record[field]
        return {"invoice": invoice}

    def get_booking_history(self, access_token: str) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"error": error}
        return {"booking_history": clone(self.booking_record)}  # a copy, as the official returns

    def list_all_airports(self) -> list[str]:
        return list(_airport_codes())

    def cancel_booking(self, access_token: str, booking_id: str) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"cancel_status": False, "error": error}
        if booking_id not in self.booking_record:
            return {"cancel_status": False, "error": "Booking not found"}
        record = self.booking_record[booking_id]
        card_id, travel_cost = record["card_id"], record["travel_cost"]
        # The refund happens before the record is removed: a failing refund keeps the booking.
        self.credit_card_list[card_id]["balance"] += travel_cost
        del self.booking_record[booking_id]
        return {"cancel_status": True}

    def compute_exchange_rate(self, base_currency: str, target_currency: str, value: float) -> dict[str, float]:
        for (usd, other), rate in _exchange_rates().items():
            if base_currency == usd and target_currency == other:
                return {"exchanged_value": float(value * rate)}
            if base_currency == other and target_currency == usd:
                return {"exchanged_value": round(value / rate, 2)}
        raise ValueError("No available exchange rate for the given currencies.")

    def verify_traveler_information(
        self, first_name: str, last_name: str, date_of_birth: str, passport_number: str
    ) -> dict[str, Any]:
        if self.user_first_name != first_name or self.user_last_name != last_name:
            # Quirk: no space between the two sentences.
            return {
                "verification_status": False,
                "verification_failure": "Cannot book flight information for another user."
                + f"Expected {self.user_first_name} {self.user_last_name}, got {first_name} {last_name}",
            }
        try:
            birth = datetime.strptime(date_of_birth, "%Y-%m-%d")  # non-strings raise TypeError
        except ValueError:
            return {
                "verification_status": False,
                "verification_failure": "Invalid date of birth format. Please use YYYY-MM-DD.",
            }
        if self._age_on(_today(), birth) < 18:
            return {"verification_status": False, "verification_failure": "Traveler must be at least 18 years old."}
        if not passport_number.startswith("US"):
            return {
                "verification_status": False,
                "verification_failure": "Passport must be issued by the United States.",
            }
        return {"verification_status": True}

    @staticmethod
    def _age_on(today: datetime, birth: datetime) -> int:
        """Whole years from ``birth`` to ``today``."""
        return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))

    def set_budget_limit(self, access_token: str, budget_limit: float) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"error": error}
        self.budget_limit = float(budget_limit)
        return {"budget_limit": self.budget_limit}

    def get_nearest_airport_by_city(self, location: str) -> dict[str, str]:
        return {"nearest_airport": _city_airports().get(location, "Unknown")}

    def purchase_insurance(
        self,
        access_token: str,
        insurance_type: str,
        booking_id: str,
        insurance_cost: float,
        card_id: str,
    ) -> dict[str, Any]:
        error = self._token_error(access_token)
        if error:
            return {"insurance_status": False, "error": error}
        if self.budget_limit is not None and self.budget_limit < insurance_cost:
            return {"insurance_status": False, "error": "Exceeded budget limit"}
        if booking_id not in self.booking_record:
            return {"insurance_status": False, "error": "Booking not found"}
        if card_id not in self.credit_card_list:
            return {"insurance_status": False, "error": "Credit card not registered"}
        self.credit_card_list[card_id]["balance"] -= insurance_cost
        # The insurance id is drawn after the charge and is not stored anywhere.
        return {"insurance_id": str(self._random.randint(100000000, 999999999)), "insurance_status": True}

    def contact_customer_support(self, booking_id: str, message: str) -> dict[str, str]:
        if booking_id not in self.booking_record:
            return {"error": "Booking not found"}
        return {"customer_support_message": _SUPPORT_REPLY}

    def get_all_credit_cards(self) -> dict[str, Any]:
        return {"credit_card_list": self.credit_card_list}
