"""MessageAPI: a workspace messenger (users, login, an inbox of ``{receiver_id: text}`` items).

Behaviour-identical to bfcl-eval's ``message_api.py``, quirks included (marked *quirk*). The
default users and inbox are read from the official source at run time.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from envs.base import Backend, Template, official_template, seeded_random

_SOURCE = "message_api.py"
_DEFAULT_SEED = 200191
_ID_LOW, _ID_HIGH = 10000, 99999  # message ids are drawn uniformly from this closed range
_NOT_LOGGED_IN = "No user is currently logged in."


def _default_state() -> Template:
    """The official DEFAULT_STATE (users, inbox, an empty ``set()`` of ids) as a template."""
    return official_template(_SOURCE, "DEFAULT_STATE")


def _first_item(message: Mapping[Any, Any]) -> tuple[Any, Any]:
    """``(receiver_id, content)`` of an inbox item: its first key and value.

    Inbox items normally hold one pair; scenario items may hold several (only the first
    counts) or none (IndexError, as in the official code). Contents may be lists or dicts in
    some scenarios.
    """
    return list(message.items())[0]


class MessageAPI(Backend):
    """Users, the logged-in user and the shared inbox.

    Compared state, in this order: ``generated_ids`` (set of message ids handed out, default
    empty), ``user_count`` (4), ``user_map`` (name → id: Alice USR001, Bob USR002, Catherine
    USR003, Daniel USR004), ``inbox`` (list of ``{receiver_id: content}``, three default items;
    no sender is stored), ``message_count`` (3) and ``current_user`` (None).

    Private: the RNG for message ids (seed ``random_seed``, default 200191). ``long_context``
    is accepted and ignored.
    """

    class_name = "MessageAPI"
    doc_file = "message_api.json"
    stateless = False

    def __init__(self) -> None:
        self._rng: random.Random | None = None  # seeded by load_scenario (or on first use)
        self._set_fields({})

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        self._rng = seeded_random(config.get("random_seed", _DEFAULT_SEED))
        self._set_fields(config)

    def _random(self) -> random.Random:
        if self._rng is None:  # an instance used without load_scenario: the default seed
            self._rng = seeded_random(_DEFAULT_SEED)
        return self._rng

    def _set_fields(self, config: Mapping[str, Any]) -> None:
        defaults = _default_state().fresh()
        for name in ("generated_ids", "user_count", "user_map", "inbox", "message_count", "current_user"):
            setattr(self, name, config[name] if name in config else defaults[name])

    # -- users -------------------------------------------------------------------------------

    def list_users(self) -> dict[str, list[str]]:
        return {"user_list": list(self.user_map)}

    def get_user_id(self, user: str) -> dict[str, Any]:
        if user not in self.user_map:
            return {"error": f"User '{user}' not found in the workspace."}
        return {"user_id": self.user_map[user]}

    def add_contact(self, user_name: str) -> dict[str, Any]:
        if user_name in self.user_map:
            return {"error": f"User name '{user_name}' already exists."}
        # quirk: the count goes up before the id clash check, so a clash still uses up a number
        self.user_count += 1
        user_id = f"USR{str(self.user_count).zfill(3)}"
        if user_id in self.user_map.values():
            return {"error": f"User ID '{user_id}' already exists."}
        self.user_map[user_name] = user_id
        return {
            "added_status": True,
            "user_id": user_id,
            "message": f"Contact '{user_name}' added successfully.",
        }

    # -- login -------------------------------------------------------------------------------

    def message_login(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.user_map.values():
            return {"login_status": False, "message": f"User ID '{user_id}' not found."}
        self.current_user = user_id
        return {"login_status": True, "message": f"User '{user_id}' logged in successfully."}

    def message_get_login_status(self) -> dict[str, bool]:
        return {"login_status": bool(self.current_user)}

    # -- messages ----------------------------------------------------------------------------

    def send_message(self, receiver_id: str, message: str) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        if receiver_id not in self.user_map.values():
            return {"error": f"Receiver ID '{receiver_id}' not found."}
        message_id = self._new_message_id()
        if message_id is None:
            return {"error": "No message ID is available."}
        self.inbox.append({receiver_id: message})
        self.message_count += 1
        return {
            "sent_status": True,
            "message_id": {"new_id": message_id},  # quirk: the id is wrapped in a dict
            "message": f"Message sent to '{receiver_id}' successfully.",
        }

    def _new_message_id(self) -> int | None:
        """Draw ids until one is unused, record it and return it.

        Deliberate divergence, for hostile input only: once every id in the range is taken the
        official loop never ends; this returns None instead (send_message then reports an error).
        """
        used = self.generated_ids
        if len(used) >= _ID_HIGH - _ID_LOW + 1 and all(i in used for i in range(_ID_LOW, _ID_HIGH + 1)):
            return None
        rng = self._random()
        new_id = rng.randint(_ID_LOW, _ID_HIGH)
        while new_id in used:
            new_id = rng.randint(_ID_LOW, _ID_HIGH)
        used.add(new_id)
        return new_id

    def delete_message(self, receiver_id: str) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        for message in reversed(self.inbox):
            receiver, _ = _first_item(message)
            if receiver == receiver_id:
                # quirk: list.remove drops the first item *equal* to the latest match, which is an
                # earlier duplicate when the same message was sent to the same receiver twice.
                # message_count is not decremented.
                self.inbox.remove(message)
                return self._deleted(receiver, receiver_id)
        return {"error": f"Receiver ID {receiver_id} not found."}

    def _deleted(self, receiver: Any, receiver_id: str) -> dict[str, Any]:
        """The result of a successful ``delete_message`` (releases word it differently)."""
        return {
            "deleted_status": True,
            "receiver_id": receiver,
            "message": f"Receiver {receiver_id}'s latest message deleted successfully.",
        }

    def view_messages_sent(self) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        # quirk: no sender is stored, so this is the whole inbox grouped by receiver
        grouped: dict[Any, list[Any]] = {}
        for message in self.inbox:
            receiver, content = _first_item(message)
            grouped.setdefault(receiver, []).append(content)
        return {"messages": grouped}

    def search_messages(self, keyword: str) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        needle = keyword.lower()
        results = []
        for message in self.inbox:
            receiver, content = _first_item(message)
            # a list or dict content (found in some scenarios) raises AttributeError here
            if needle in content.lower():
                results.append({"receiver_id": receiver, "message": content})
        return {"results": results}

    def get_message_stats(self) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        receivers = {_first_item(message)[0] for message in self.inbox}
        return {"stats": {"received_count": len(self.inbox), "total_contacts": len(receivers)}}
