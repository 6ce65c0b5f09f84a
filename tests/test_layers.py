"""The layering, enforced: no package imports a layer above it.

    envs  <-  toolenv  <-  {evaluators, ood_variants}  <-  trainers

``integrations`` (the adapters to other engines: the OpenEnv server, TRL, ...) sits on top: it
may import every layer (a TRL adapter plays the trainer's token-in/token-out rollout) and none
imports it. Every module of the product packages is parsed (not imported) and every import in
it is checked: top-level and inside functions, ``import x`` and ``from x import y``, relative imports,
and ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name. The two middle
packages are siblings: neither imports the other. Upper layers reach the core's command line
and its OOD hook through entry points (``pyproject.toml``), which are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> the project packages it may import (itself included)
ALLOWED: dict[str, frozenset[str]] = {
    "envs": frozenset({"envs"}),
    "toolenv": frozenset({"envs", "toolenv"}),
    "evaluators": frozenset({"envs", "toolenv", "evaluators"}),
    "ood_variants": frozenset({"envs", "toolenv", "ood_variants"}),
    "trainers": frozenset({"envs", "toolenv", "evaluators", "ood_variants", "trainers"}),
    # adapters to other engines (issue #16): on top of everything, imported by nothing
    "integrations": frozenset({"envs", "toolenv", "evaluators", "ood_variants", "trainers", "integrations"}),
}
PROJECT = frozenset(ALLOWED)


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source`` (the text of ``module``)."""
    found: list[tuple[int, str]] = []
    package_parts = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's own package
                base = package_parts[: len(package_parts) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(source: str, module: str) -> list[str]:
    """The imports of ``module`` that reach a layer it may not import."""
    layer = module.split(".")[0]
    allowed = ALLOWED[layer]
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module)
        if name.split(".")[0] in PROJECT and name.split(".")[0] not in allowed
    ]


def product_modules() -> list[tuple[str, Path]]:
    modules = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1] + ["__init__"]
            modules.append((".".join(parts), path))
    return modules


def test_no_module_imports_a_layer_above_it() -> None:
    modules = product_modules()
    assert len(modules) > 60  # every package was found
    found = [v for module, path in modules for v in violations(path.read_text(encoding="utf-8"), module)]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from evaluators.runner import run_eval\n",
        "def f():\n    import trainers.train\n",
        "def f():\n    from ood_variants import make_variant\n",
        "import importlib\nimportlib.import_module('evaluators.scoring')\n",
        "from ..trainers import grpo\n",
    ],
)
def test_an_upward_import_is_caught(source: str) -> None:
    assert violations(source, "toolenv.example") != []


def test_siblings_do_not_import_each_other() -> None:
    assert violations("from ood_variants import registry\n", "evaluators.example") != []
    assert violations("from evaluators import scoring\n", "ood_variants.example") != []
    assert violations("from toolenv.data import Task\nfrom envs import backend_class\n", "ood_variants.example") == []


def test_integrations_are_imported_by_no_layer() -> None:
    assert violations("from trainers.rollout import RolloutDriver\n", "integrations.example") == []
    for layer in ("envs", "toolenv", "evaluators", "ood_variants", "trainers"):
        assert violations("from integrations.server import app\n", f"{layer}.example") != []
    assert violations("from toolenv.env import BFCLEnv\nfrom evaluators import scoring\n", "integrations.x") == []


def test_the_readme_states_what_this_test_enforces() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "envs  <-  toolenv  <-  {evaluators, ood_variants}  <-  trainers" in readme


# -- the structure report (`python -m tests.test_layers`): the package import graph and the
# -- longest functions, measured from the code, for notes and reviews ------------------------


def package_graph() -> dict[tuple[str, str], int]:
    """``(importing package, imported package) -> number of imports``, across packages only."""
    edges: dict[tuple[str, str], int] = {}
    for module, path in product_modules():
        for _, name in imported_modules(path.read_text(encoding="utf-8"), module):
            source, target = module.split(".")[0], name.split(".")[0]
            if target in PROJECT and target != source:
                edges[source, target] = edges.get((source, target), 0) + 1
    return edges


def longest_functions(count: int = 15, roots: tuple[str, ...] = (*ALLOWED, "bench")) -> list[tuple[int, str]]:
    """The ``count`` longest functions and methods (lines, ``file:name:first-last``)."""
    found = []
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    found.append((lines, f"{path.relative_to(ROOT)}:{node.name}:{node.lineno}-{node.end_lineno}"))
    return sorted(found, reverse=True)[:count]


if __name__ == "__main__":
    print("package imports (importer -> imported: count)")
    for (source, target), number in sorted(package_graph().items()):
        print(f"  {source} -> {target}: {number}")
    print("longest functions")
    for lines, where in longest_functions():
        print(f"  {lines:>4}  {where}")
