"""The product code never evaluates text: no eval/exec/compile/__import__ anywhere in it."""

from __future__ import annotations

import ast
from pathlib import Path

PRODUCT = ["envs", "toolenv", "evaluators", "ood_variants", "trainers"]
FORBIDDEN = {"eval", "exec", "compile", "__import__"}
ROOT = Path(__file__).resolve().parent.parent


def test_product_source_has_no_eval_exec_or_dynamic_import() -> None:
    offenders = []
    files = [p for package in PRODUCT for p in (ROOT / package).rglob("*.py")]
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    name = func.id
                elif isinstance(func, ast.Attribute) and func.attr != "compile":  # re.compile is fine
                    name = func.attr
            elif isinstance(node, ast.Name):
                name = node.id
            if name in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not offenders, offenders
