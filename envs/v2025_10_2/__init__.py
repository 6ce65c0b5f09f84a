"""bfcl-eval 2025.10.2: the release the paper's numbers were measured on.

Each module here holds one backend as that release behaves, a subclass of the default
release's class overriding only what differs (``docs/data-versions.md`` lists the differences).
``OVERRIDES`` maps a class name to its module; :func:`envs.backend_class` reads it.
"""

from __future__ import annotations

VERSION = "2025.10.2"

OVERRIDES: dict[str, str] = {
    "GorillaFileSystem": "envs.v2025_10_2.file_system",
    "MessageAPI": "envs.v2025_10_2.message",
    "TwitterAPI": "envs.v2025_10_2.twitter",
    "TicketAPI": "envs.v2025_10_2.ticket",
    "TradingBot": "envs.v2025_10_2.trading",
    "TravelAPI": "envs.v2025_10_2.travel",
}
