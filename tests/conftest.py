"""Test-session setup: the oracle of the release under test (see ``tests/release_oracle.py``)."""

from tests.release_oracle import use_release_oracle

use_release_oracle()
