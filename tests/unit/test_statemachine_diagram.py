"""The committed diagram is the one rendered from the machine's table."""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

from statemachine import STATES, TRANSITIONS
from statemachine.diagram import render

COMMITTED = Path(__file__).resolve().parents[2] / "runbooks" / "state-diagram.md"


def test_committed_diagram_is_current() -> None:
    assert COMMITTED.read_text() == render(), (
        "runbooks/state-diagram.md is stale: run `make diagram`"
    )


def test_diagram_has_every_edge_and_state() -> None:
    text = render()
    for row in TRANSITIONS:
        if row.sources == ("*",):
            continue
        for source in row.sources:
            dest = source if row.dest == "=" else row.dest
            assert f"    {source} --> {dest}: {row.trigger}" in text
    for state in STATES:
        assert f"| `{state.status}` | {state.access.value} |" in text
    assert "class incomplete_expired,canceled terminal" in text


def test_module_prints_the_diagram(monkeypatch: pytest.MonkeyPatch) -> None:
    # runpy re-executes the module; drop the imported copy so it does not warn.
    monkeypatch.delitem(sys.modules, "statemachine.diagram")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_module("statemachine.diagram", run_name="__main__")
    assert out.getvalue() == render()
