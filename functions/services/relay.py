"""Outbox relay: publishes committed entitlement changes, then marks them sent.

Runs after the transaction commits, never inside it. It always publishes every unsent
entry of the customer in version order, so a crash between publish and mark, or a
failed publish, is repaired by the next event for that customer or by the sweep. The
price is at-least-once delivery of a version; consumers dedupe on (customer id, version).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from functions.log import get_logger
from functions.ports import BillingRepository, Publisher
from functions.services.batch import per_customer
from schemas.documents import OutboxEntry
from schemas.entitlements import SCHEMA_VERSION, SYNTHETIC_ATTRIBUTE
from statemachine.synthetic import is_synthetic


def encode(entry: OutboxEntry) -> tuple[bytes, dict[str, str]]:
    # Stable bytes: a republished version is byte-identical to the first publish.
    data = json.dumps(entry.payload, sort_keys=True, separators=(",", ":")).encode()
    attributes = {
        "customer_id": entry.customer_id,
        "version": str(entry.version),
        "schema_version": SCHEMA_VERSION,
        "causing_event_id": entry.causing_event_id,
    }
    if entry.trace_id:
        attributes["trace_id"] = entry.trace_id
    if is_synthetic(entry.customer_id):
        attributes[SYNTHETIC_ATTRIBUTE] = "true"
    return data, attributes


@dataclass(frozen=True)
class SweepResult:
    customers: int
    published: int
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def outage(self) -> bool:
        return bool(self.failed) and len(self.failed) == self.customers


class OutboxRelay:
    def __init__(
        self,
        repo: BillingRepository,
        publisher: Publisher,
        topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._publisher = publisher
        self._topic = topic
        self._clock = clock

    def relay_customer(self, customer_id: str, pending: Sequence[OutboxEntry] | None = None) -> int:
        """Publish all unsent entries of one customer in order; raises TransientError.

        `pending` is the complete unsent list when the caller's transaction proved it
        (ApplyResult.pending), which saves a query; None reads it from the outbox.
        """
        if pending is None:
            pending = self._repo.pending_outbox(customer_id)
        published = 0
        for entry in pending:
            data, attributes = encode(entry)
            log = get_logger(
                component="relay",
                customer_id=customer_id,
                version=entry.version,
                trace_id=entry.trace_id,
            )
            try:
                self._publisher.publish(
                    self._topic, data, attributes=attributes, ordering_key=customer_id
                )
            except Exception:
                log.error("outbox_relay_failed", exc_info=True)
                raise
            now = self._clock()
            self._repo.mark_sent(customer_id, entry.version, now)
            log.info("outbox_relayed", relay_lag_ms=round((now - entry.created_at) * 1000, 1))
            published += 1
        return published

    def sweep(self, older_than_seconds: float, limit: int = 500) -> SweepResult:
        """Relay customers whose entries stayed unsent longer than the threshold."""
        customers = self.stale_customers(older_than_seconds, limit)
        counts: list[int] = []
        report = per_customer(
            "relay", customers, self.relay_customer, on_result=lambda _, n: counts.append(n)
        )
        result = SweepResult(len(customers), sum(counts), report.failed)
        get_logger(component="relay").info(
            "outbox_sweep",
            customers=result.customers,
            published=result.published,
            failed=len(result.failed),
        )
        return result

    def stale_customers(self, older_than_seconds: float, limit: int = 500) -> list[str]:
        stale = self._repo.stale_outbox(self._clock() - older_than_seconds, limit=limit)
        return sorted({entry.customer_id for entry in stale})
