"""The slice of `make chaos` that make test runs (issue 17): 200 events over 20 customers
through the real stack while a subscriber worker is SIGKILLed and Firestore is frozen for
5 s; nothing may be lost, applied twice, out of version order or unlike in-order delivery."""

from __future__ import annotations

import pytest

from infra.local.emulators import Emulators
from tests.support.chaos import QUICK, run

pytestmark = pytest.mark.emulator


@pytest.mark.timeout(300)
def test_the_quick_chaos_slice_loses_nothing_and_applies_nothing_twice(
    emulators: Emulators,
) -> None:
    lines: list[str] = []
    counts = run(QUICK, emulators, lines.append)

    assert counts.problems() == [], "\n".join([counts.table(), *counts.examples, *lines])
    assert counts.faults == ["worker process_stripe_event", "stall firestore"]
    assert any("worker" in line and "died" in line for line in lines)  # the kill landed
    assert counts.acked == counts.unique_events == 133
    assert counts.duplicates == 67
