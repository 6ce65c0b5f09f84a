"""TicketAPI: a company's support-ticket queue (BFCL's ``ticket_api``).

Behaviour-identical to the official ``TicketAPI``: tickets are plain dicts kept in a list and
returned by reference, errors are returned as ``{"error": ...}`` dicts (a one-element list for
``get_user_tickets``), and bad argument types fail with the same Python exceptions.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from envs.base import Backend, official_template

_SOURCE = "ticket_api.py"


class TicketAPI(Backend):
    """The ticket system.

    Compared state (public attributes, in the official order) and defaults: ``ticket_queue``
    ``[]`` (ticket dicts: id, title, description, status, priority, created_by, and resolution
    once resolved), ``ticket_counter`` ``1`` (the next id) and ``current_user`` ``None``.
    The long-context flag is accepted and ignored, as in the official class.
    """

    class_name = "TicketAPI"
    doc_file = "ticket_api.json"
    stateless = False

    _STATE_KEYS = ("ticket_queue", "ticket_counter", "current_user")

    def __init__(self) -> None:
        self.ticket_queue: list[dict[str, Any]] = []
        self.ticket_counter: int = 1
        self.current_user: Optional[str] = None

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        defaults = official_template(_SOURCE, "DEFAULT_STATE").fresh()
        for key in self._STATE_KEYS:
            setattr(self, key, config.get(key, defaults[key]))

    def _find_ticket(self, ticket_id: Any) -> Optional[dict[str, Any]]:
        """The first ticket whose id equals ``ticket_id`` (``==``, so ``1.0`` finds ticket 1)."""
        for ticket in self.ticket_queue:
            if ticket["id"] == ticket_id:
                return ticket
        return None

    @staticmethod
    def _not_found(ticket_id: Any) -> dict[str, str]:
        return {"error": f"Ticket with ID {ticket_id} not found."}

    # -- tools --------------------------------------------------------------------------------

    def create_ticket(self, title: str, description: str = "", priority: int = 1) -> dict[str, Any]:
        if not self.current_user:
            return {"error": "User not authenticated. Please log in to create a ticket."}
        # Only the range is checked (so 2.5 or True pass; a string raises TypeError).
        if priority < 1 or priority > 5:
            return {"error": "Invalid priority. Priority must be between 1 and 5."}
        ticket = {
            "id": self.ticket_counter,
            "title": title,
            "description": description,
            "status": "Open",
            "priority": priority,
            "created_by": self.current_user,
        }
        self.ticket_queue.append(ticket)
        self.ticket_counter += 1
        return ticket  # the stored dict itself, as the official returns it

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._find_ticket(ticket_id)
        if not ticket:
            return self._not_found(ticket_id)
        return ticket

    def close_ticket(self, ticket_id: int) -> dict[str, str]:
        ticket = self._find_ticket(ticket_id)
        if not ticket:
            return self._not_found(ticket_id)
        if ticket["status"] == "Closed":
            return {"error": f"Ticket with ID {ticket_id} is already closed."}
        ticket["status"] = "Closed"
        return {"status": f"Ticket {ticket_id} has been closed successfully."}

    def resolve_ticket(self, ticket_id: int, resolution: str) -> dict[str, str]:
        ticket = self._find_ticket(ticket_id)
        if not ticket:
            return self._not_found(ticket_id)
        if ticket["status"] == "Resolved":
            return {"error": f"Ticket with ID {ticket_id} is already resolved."}
        ticket["status"] = "Resolved"
        ticket["resolution"] = resolution
        return {"status": f"Ticket {ticket_id} has been resolved successfully."}

    def edit_ticket(self, ticket_id: int, updates: dict[str, Any]) -> dict[str, str]:
        ticket = self._find_ticket(ticket_id)
        if not ticket:
            return self._not_found(ticket_id)
        # The invalid names are listed in set order, which depends on the hash seed. The
        # difference iterates (a copy of) the left set only, so building that set from the keys
        # in dict order, as the official does, gives one text per PYTHONHASHSEED on both sides.
        allowed = {"title", "description", "status", "priority"}
        invalid = set(updates.keys()) - allowed
        if invalid:
            return {"error": f"Invalid fields for update: {', '.join(invalid)}"}
        for key, value in updates.items():
            if value is not None:  # None means "leave unchanged"
                ticket[key] = value
        return {"status": f"Ticket {ticket_id} has been updated successfully."}

    def ticket_login(self, username: str, password: str) -> dict[str, bool]:
        # Any truthy pair logs in; nothing is checked against stored credentials.
        if username and password:
            self.current_user = username
            return {"success": True}
        return {"success": False}

    def ticket_get_login_status(self) -> dict[str, bool]:
        return {"login_status": bool(self.current_user)}

    def logout(self) -> dict[str, bool]:
        if self.current_user:
            self.current_user = None
            return {"success": True}
        return {"success": False}

    def get_user_tickets(self, status: Optional[str] = None) -> list[dict[str, Any]]:
        if not self.current_user:
            # Quirk: the error comes as a one-element list, not as a dict.
            return [{"error": "User not authenticated. Please log in to view tickets."}]
        mine = [ticket for ticket in self.ticket_queue if ticket["created_by"] == self.current_user]
        if status:
            # ``status.lower()`` is evaluated per ticket, after the ticket's own status: with no
            # tickets a non-string filter raises nothing, as in the official.
            mine = [ticket for ticket in mine if ticket["status"].lower() == status.lower()]
        return mine
