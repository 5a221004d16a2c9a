"""statemachine/ is pure: stdlib, transitions and schemas only, and no clock reads."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "statemachine"
ALLOWED_ROOTS = {"transitions", "schemas", "statemachine", "__future__"}
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("time", "time"),
    ("date", "today"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
}


def modules() -> list[Path]:
    found = sorted(PACKAGE.glob("*.py"))
    assert len(found) >= 8
    return found


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_imports_only_stdlib_transitions_and_schemas(path: Path) -> None:
    roots = imported_roots(ast.parse(path.read_text()))
    foreign = {r for r in roots if r not in ALLOWED_ROOTS and r not in sys.stdlib_module_names}
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_never_reads_the_clock(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in CLOCK_CALLS, f"{path.name} reads the clock"


def test_the_checker_would_catch_a_violation() -> None:
    tree = ast.parse("import google.cloud.firestore\nfrom stripe import Event\nimport json\n")
    roots = imported_roots(tree)
    assert {r for r in roots if r not in ALLOWED_ROOTS and r not in sys.stdlib_module_names} == {
        "google",
        "stripe",
    }
