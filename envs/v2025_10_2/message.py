"""MessageAPI as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Overridden: ``delete_message`` (its result names the receiver ``message_id`` and says "first
message"). Everything else is the default release's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.message import MessageAPI as MessageAPINow
from envs.v2025_10_2 import VERSION


class MessageAPI(MessageAPINow):
    """MessageAPI of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def _deleted(self, receiver: Any, receiver_id: str) -> dict[str, Any]:
        # 2025.10.2: the receiver is reported under "message_id", and the text says "first"
        # although the latest message is the one deleted
        return {
            "deleted_status": True,
            "message_id": receiver,
            "message": f"Receiver {receiver_id}'s first message deleted successfully.",
        }
