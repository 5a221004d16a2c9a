"""Jobs over many customers: one customer's failure never stops the others.

The scheduled jobs (sweep, re-evaluation, nightly reconcile) and their CLI twins all loop
through `per_customer`, so they fail the same way: each failure is logged
(`job_customer_failed`, which on-call's log metrics count) and reported, and a job is an
outage (HTTP 500, so Cloud Scheduler retries and alerts) only when nothing succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from functions.log import get_logger

_T = TypeVar("_T")


@dataclass
class BatchReport:
    """What a job over many customers did: one entry per customer, done or failed."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def outage(self) -> bool:
        """Every customer failed: Stripe, Firestore or Pub/Sub is down, not one record."""
        return bool(self.failed) and not self.done


def per_customer(
    job: str,
    customers: Iterable[str],
    work: Callable[[str], _T],
    *,
    on_result: Callable[[str, _T], None] | None = None,
) -> BatchReport:
    """Run `work` for each customer, isolating failures; `on_result` sees each success."""
    log = get_logger(component=job)
    report = BatchReport()
    for customer in customers:
        try:
            value = work(customer)
        except Exception as exc:
            report.failed[customer] = f"{type(exc).__name__}: {exc}"
            log.error("job_customer_failed", customer_id=customer, error=report.failed[customer])
            continue
        report.done.append(customer)
        if on_result is not None:
            on_result(customer, value)
    return report
