"""The oracle of the release under test.

The suite runs against the process's BFCL release (``TOOLENV_DATA_VERSION``, default the
pinned default release). The oracle must be bfcl-eval *of that release*: when the installed
one (``tests/oracle-requirements.txt``) is another, the release's pinned wheel (fetched and
sha256-checked by toolenv) is unpacked once under ``$TOOLENV_HOME/oracle/<version>/`` and put
first on ``sys.path``, before anything imports ``bfcl_eval``. ``tests/conftest.py`` calls
:func:`use_release_oracle` for pytest, and ``tests/oracle.py`` for the scripts
(``python -m tests.fuzz``). CI runs the release-independent parity suites (marker
``release``) a second time this way, on the paper's release.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from envs._official import BFCL_DISTRIBUTION, fetch_wheel, selected_version, toolenv_home


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(BFCL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _unpacked_oracle(version: str) -> Path:
    """The folder holding ``bfcl_eval/`` of ``version``, unpacked from its verified wheel."""
    target = toolenv_home() / "oracle" / version
    if (target / "bfcl_eval").is_dir():
        return target
    wheel = fetch_wheel(quiet=True, version=version)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(scratch)
    try:
        os.replace(scratch, target)
    except OSError:  # another process unpacked it first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def use_release_oracle() -> None:
    """Put the oracle of the process's release first on ``sys.path`` (idempotent)."""
    version = selected_version()
    installed = _installed_version()
    if installed is None or installed == version:
        return  # no oracle at all (the oracle tests skip or fail by their own rule), or the right one
    folder = str(_unpacked_oracle(version))
    if folder in sys.path:
        return
    sys.path.insert(0, folder)
    importlib.invalidate_caches()
    assert "bfcl_eval" not in sys.modules, "bfcl_eval was imported before the release oracle was set up"
    found = _installed_version()
    assert found == version, f"the oracle on sys.path is bfcl-eval {found}, not {version}"


def only_on_release(version: str) -> pytest.MarkDecorator:
    """Skip a test of one release's own behaviour unless that release is under test (CI's
    second run selects it; see the module docstring)."""
    return pytest.mark.skipif(
        selected_version() != version, reason=f"tests bfcl-eval {version}; run with TOOLENV_DATA_VERSION={version}"
    )
