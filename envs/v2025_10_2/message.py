"""MessageAPI as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Overridden: ``delete_message`` (its result names the receiver ``message_id`` and says "first
message"). Everything else is the default release's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.message import _NOT_LOGGED_IN, _first_item
from envs.message import MessageAPI as MessageAPINow
from envs.v2025_10_2 import VERSION


class MessageAPI(MessageAPINow):
    """MessageAPI of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def delete_message(self, receiver_id: str) -> dict[str, Any]:
        if not self.current_user:
            return {"error": _NOT_LOGGED_IN}
        for message in reversed(self.inbox):
            receiver, _ = _first_item(message)
            if receiver == receiver_id:
                # quirk (as today): list.remove drops the first item equal to the latest match
                self.inbox.remove(message)
                # 2025.10.2: the receiver is reported under "message_id", and the text says
                # "first" although the latest message is the one deleted
                return {
                    "deleted_status": True,
                    "message_id": receiver,
                    "message": f"Receiver {receiver_id}'s first message deleted successfully.",
                }
        return {"error": f"Receiver ID {receiver_id} not found."}
