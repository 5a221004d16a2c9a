"""The house plan, checked: which room may import what, and functions small enough to read.

functions/entrypoints/ decode and call a service; functions/services/ depend on the
Protocols in functions/ports.py only; functions/adapters/ are built in one place,
functions/composition.py. These tests read the source (imports included, lazy ones too),
so a shortcut through the wall fails here rather than in review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = [ROOT / "main.py", *sorted((ROOT / "functions").rglob("*.py"))]
PRODUCTION += sorted((ROOT / "statemachine").rglob("*.py"))
PRODUCTION += sorted((ROOT / "schemas").rglob("*.py"))
MAX_FUNCTION_LINES = 60
# The client libraries only adapters may load.
CLIENT_LIBRARIES = ("google.cloud", "google.api_core", "google.pubsub_v1", "stripe", "grpc")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# The SDK's request TypedDicts (generated per API version) may be imported for type checking
# only: they are data shapes, not the client, and never load at run time.
TYPE_ONLY_ALLOWED = ("stripe.params",)


def _type_only_imports(tree: ast.Module) -> set[int]:
    """ids of import nodes inside a top-level `if TYPE_CHECKING:` block."""
    return {
        id(child)
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
        for child in ast.walk(node)
        if isinstance(child, ast.ImportFrom) and (child.module or "").startswith(TYPE_ONLY_ALLOWED)
    }


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    type_only = _type_only_imports(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _room(path: Path) -> list[Path]:
    return sorted((ROOT / "functions" / path).rglob("*.py"))


def _offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{_rel(p)} imports {name}"
        for p in paths
        for name in sorted(_imports(p))
        if name.startswith(forbidden)
    ]


def test_services_ports_and_the_message_module_use_no_adapter_and_no_client_library() -> None:
    paths = [
        *_room(Path("services")),
        ROOT / "functions/ports.py",
        ROOT / "functions/stripe_events.py",
        ROOT / "functions/errors.py",
    ]
    forbidden = ("functions.adapters", "functions.entrypoints", "flask", *CLIENT_LIBRARIES)
    assert _offenders(paths, forbidden) == []


def test_only_type_checking_imports_of_stripe_params_are_exempt(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import stripe\n"
        "from stripe.params import ProductCreateParams\n"
        "if TYPE_CHECKING:\n"
        "    from stripe.params import PriceCreateParams\n"
        "    from stripe import StripeClient\n"
    )
    assert _imports(module) >= {
        "stripe",
        "stripe.params.ProductCreateParams",
        "stripe.StripeClient",
    }
    assert "stripe.params.PriceCreateParams" not in _imports(module)


def test_only_the_composition_root_builds_adapters() -> None:
    outside = [p for p in PRODUCTION if "adapters" not in p.parts and p.name != "composition.py"]
    assert _offenders(outside, ("functions.adapters",)) == []


def test_one_transient_mapping_for_google_errors() -> None:
    # The retry decision lives in google_errors.py; nobody else lists Google's error types.
    retryable = ("ServiceUnavailable", "DeadlineExceeded", "InternalServerError", "Aborted")
    mapping = ROOT / "functions/adapters/google_errors.py"
    elsewhere = [
        _rel(p)
        for p in PRODUCTION
        if p != mapping and any(f".{name}" in p.read_text() for name in retryable)
    ]
    assert elsewhere == []


def _long_functions() -> list[str]:
    long: list[str] = []
    for path in PRODUCTION:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            has_docstring = (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            )
            first = body[1] if has_docstring and len(body) > 1 else body[0]
            lines = (node.end_lineno or first.lineno) - first.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{_rel(path)}:{node.lineno} {node.name} has {lines} lines")
    return long


def test_no_production_function_is_longer_than_a_screen() -> None:
    assert _long_functions() == []


def test_the_length_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = tmp_path / "long.py"
    long.write_text("def f() -> None:\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1))
    monkeypatch.setattr(sys.modules[__name__], "PRODUCTION", [long])
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _long_functions() == [f"long.py:1 f has {MAX_FUNCTION_LINES + 1} lines"]


def test_billing_ops_help_loads_no_client_library() -> None:
    # "google.cloud" alone is a namespace package that functions_framework-free code may
    # touch; its client modules are what costs a cold start.
    prefixes = tuple(f"{n}." if n == "google.cloud" else n for n in CLIENT_LIBRARIES)
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from functions.entrypoints.cli.main import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({prefixes!r}))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
