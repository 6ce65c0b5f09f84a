"""Read-only access to the pinned official BFCL distribution (bfcl-eval), without executing it.

toolenv never imports or runs the official package to obtain data. Everything that must be
byte-identical to the reference (the dataset files, the function docs, the long-context filler,
the large default tables of the backends, the prompt templates) is read from the distribution's
files: JSON files as bytes, Python source files through :mod:`ast` (literal values only).

Where the distribution comes from, in this order:

1. ``TOOLENV_BFCL_SOURCE``: a folder holding ``bfcl_eval/`` (for example a BFCL checkout's
   ``berkeley-function-call-leaderboard``) or the ``bfcl_eval`` folder itself;
2. an installed ``bfcl-eval`` of the pinned version (located with ``importlib``, never imported);
3. the pinned wheel in the cache (``$TOOLENV_HOME/wheels``, default ``~/.cache/toolenv``),
   verified by sha256; fetched there with ``pip download --no-deps`` when missing.

This module is stdlib-only because the backends (``envs``) sit below every other layer.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
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
BFCL_VERSION = "2026.3.23"
WHEEL_FILENAME = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
BACKEND_SOURCE_DIR = "eval_checker/multi_turn_eval/func_source_code"


class DataError(RuntimeError):
    """A one-line, actionable problem with the official data (missing, corrupt, wrong version)."""


def toolenv_home() -> Path:
    """The cache folder: ``$TOOLENV_HOME``, else ``$XDG_CACHE_HOME/toolenv``, else ``~/.cache/toolenv``."""
    if os.environ.get("TOOLENV_HOME"):
        return Path(os.environ["TOOLENV_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolenv"


def cached_wheel_path() -> Path:
    return toolenv_home() / "wheels" / WHEEL_FILENAME


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
    ``bfcl_eval`` folder, or the wheel file. ``version`` is the pinned version string.
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
                f"run `toolenv data fetch --force` to restore {BFCL_DISTRIBUTION}=={BFCL_VERSION}"
            ) from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"cannot read {self.root} ({exc}); run `toolenv data fetch --force`") from exc

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode("utf-8")


_zip_lock = threading.Lock()


@lru_cache(maxsize=4)
def _wheel_zip(path: Path) -> zipfile.ZipFile:
    with _zip_lock:
        return zipfile.ZipFile(path)


def _source_from_env() -> Distribution | None:
    raw = os.environ.get("TOOLENV_BFCL_SOURCE")
    if not raw:
        return None
    folder = Path(raw).expanduser()
    for candidate in (folder, folder / "bfcl_eval"):
        if (candidate / "data").is_dir() and (candidate / BACKEND_SOURCE_DIR).is_dir():
            return Distribution("source", candidate.resolve(), BFCL_VERSION)
    raise DataError(
        f"TOOLENV_BFCL_SOURCE={raw} holds no bfcl_eval/ folder with data/ and "
        f"{BACKEND_SOURCE_DIR}/; point it at a BFCL checkout or unset it"
    )


def _installed() -> Distribution | None:
    try:
        version = importlib.metadata.version(BFCL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    if version != BFCL_VERSION:
        return None  # another version is installed: use the pinned wheel instead
    spec = importlib.util.find_spec("bfcl_eval")  # top-level lookup: does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "data").is_dir():
        return None
    return Distribution("installed", root, version)


def _verified_wheel(path: Path) -> Distribution:
    actual = sha256_of(path)
    if actual != WHEEL_SHA256:
        raise DataError(
            f"cached wheel {path} is corrupt (sha256 {actual[:16]}…, expected {WHEEL_SHA256[:16]}…); "
            "run `toolenv data fetch --force`"
        )
    return Distribution("wheel", path, BFCL_VERSION, actual)


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


def fetch_wheel(force: bool = False, quiet: bool = False) -> Path:
    """Download the pinned bfcl-eval wheel into the cache (see :func:`download_wheel`)."""
    target = cached_wheel_path()
    if target.exists() and not force:
        _verified_wheel(target)
        return target
    try:
        download_wheel(f"{BFCL_DISTRIBUTION}=={BFCL_VERSION}", WHEEL_FILENAME, WHEEL_SHA256, target, quiet)
    except DataError as exc:
        raise DataError(f"{exc}; or set TOOLENV_BFCL_SOURCE to a BFCL checkout") from None
    _wheel_zip.cache_clear()
    distribution.cache_clear()
    return target


@lru_cache(maxsize=1)
def distribution() -> Distribution:
    """The official distribution to read from (see the module docstring for the order)."""
    found = _source_from_env() or _installed()
    if found is not None:
        return found
    wheel = cached_wheel_path()
    if not wheel.exists():
        fetch_wheel()
    return _verified_wheel(wheel)


# --------------------------------------------------------------------------------------------
# Literal values from the official Python sources, through ast (never executed).


@lru_cache(maxsize=32)
def _module_ast(relative: str) -> ast.Module:
    return ast.parse(distribution().read_text(relative), filename=relative)


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


@lru_cache(maxsize=256)
def official_literal(module_file: str, dotted_name: str) -> Any:
    """The literal value bound to ``dotted_name`` in an official backend source file.

    ``module_file`` is a file in ``func_source_code`` (``"trading_bot.py"``) or a path relative
    to ``bfcl_eval/`` (``"constants/default_prompts.py"``). ``dotted_name`` is ``NAME``
    (module level), or ``Class.method.NAME`` for a value assigned inside a method (the first
    assignment of that name in the scope, ``self.NAME = …`` included); ``Class.method.return``
    is the first literal container the method returns.

    The returned object is shared by every caller: treat it as read-only and copy before
    putting it into mutable state.
    """
    relative = module_file if "/" in module_file else f"{BACKEND_SOURCE_DIR}/{module_file}"
    module = _module_ast(relative)
    *scopes, name = dotted_name.split(".")
    return _literal(_find_assignment(_scope_body(module, scopes), name), module)
