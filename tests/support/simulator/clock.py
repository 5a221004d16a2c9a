"""Simulated time: integer unix seconds, a queue of what is due, seeded ids, months.

Everything the simulator does later (a renewal, a retry, a trial ending) is a `Task` on
the clock. `run_until(t)` runs due tasks in time order (ties in the order they were
queued) and leaves `now` at `t`; a task may queue further tasks, which run in the same
pass when they fall before `t`. Nothing here reads the wall clock.
"""

from __future__ import annotations

import calendar
import heapq
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

MINUTE = 60
HOUR = 3_600
DAY = 86_400

_ALPHABET = string.ascii_letters + string.digits


@dataclass(order=True)
class Task:
    at: int
    seq: int
    label: str = field(compare=False)
    run: Callable[[], None] = field(compare=False, repr=False)


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start
        self._queue: list[Task] = []
        self._seq = 0

    def at(self, when: int, label: str, run: Callable[[], None]) -> None:
        """Queue `run` for `when` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._queue, Task(max(when, self.now), self._seq, label, run))

    def run_until(self, until: int) -> None:
        if until < self.now:
            raise ValueError(f"time moves forward only: {until} < {self.now}")
        while self._queue and self._queue[0].at <= until:
            task = heapq.heappop(self._queue)
            self.now = task.at
            task.run()
        self.now = until

    def pending(self) -> list[tuple[int, str]]:
        return [(t.at, t.label) for t in sorted(self._queue)]


class Ids:
    """Stripe-looking ids (`sub_` + 24 alphanumerics), reproducible from the seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def new(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{''.join(self._rng.choices(_ALPHABET, k=length))}"

    def uuid(self) -> str:
        hexes = "".join(self._rng.choices("0123456789abcdef", k=32))
        return f"{hexes[:8]}-{hexes[8:12]}-4{hexes[13:16]}-{hexes[16:20]}-{hexes[20:]}"


def add_months(anchor: int, months: int) -> int:
    """`anchor` plus whole calendar months, clamped to the month's last day.

    Stripe bills monthly prices on the anchor's day of month; an anchor on the 31st bills
    on the last day of shorter months (docs.stripe.com/billing/subscriptions/billing-cycle).
    """
    start = datetime.fromtimestamp(anchor, UTC)
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def period_end(anchor: int, period_start: int) -> int:
    """The end of the monthly period starting at `period_start` on `anchor`'s cycle."""
    months = 1
    while add_months(anchor, months) <= period_start:
        months += 1
    return add_months(anchor, months)
