"""TicketAPI as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Overridden: ``ticket_get_login_status`` (its key is ``username``). Everything else is the
default release's.
"""

from __future__ import annotations

from typing import ClassVar

from envs.ticket import TicketAPI as TicketAPINow
from envs.v2025_10_2 import VERSION


class TicketAPI(TicketAPINow):
    """TicketAPI of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def ticket_get_login_status(self) -> dict[str, bool]:
        # 2025.10.2: the flag is reported under "username"
        return {"username": bool(self.current_user)}
