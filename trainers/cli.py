"""``toolenv train`` / ``toolenv plot`` commands (registered by :mod:`toolenv.cli`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add this package's subcommands to the ``toolenv`` parser."""
