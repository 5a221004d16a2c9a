"""The billing repository port: every state change goes through `apply`.

`apply` runs one transaction that (1) creates the idempotency marker for the operation id,
(2) lets the pure domain decide from the current record, (3) stores the new record, an
audit entry and, when entitlements changed, an outbox entry. If the marker already exists
nothing is written and the result says `duplicate`. The decide callback may run more than
once (transaction retries), so it must be pure: it is, it is the domain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.documents import (
    BillingRecord,
    FailureRecord,
    HistoryEntry,
    OutboxEntry,
)
from statemachine import entitlement_message
from statemachine.decision import Decision

Source = Literal["webhook", "replay", "reconcile", "override", "reevaluate"]
DecideFn = Callable[[BillingRecord], Decision]


@dataclass(frozen=True)
class Operation:
    """One idempotent unit of work: a Stripe event or an operator action."""

    op_id: str  # Stripe event id, or a generated id for operator actions
    op_type: str  # Stripe event type, or e.g. "ops.override"
    customer_id: str | None
    at: int  # epoch seconds the domain treats as "now" (the event's created)
    source: Source = "webhook"
    trace_id: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    duplicate: bool
    decision: Decision | None  # None when duplicate or when there is no customer
    outbox_version: int | None  # the version written to the outbox, if any
    # Every unsent outbox entry of the customer right after the commit, oldest first, when
    # the transaction could prove the list complete; None when it could not (the relay then
    # reads the outbox). Proof: relays mark versions sent in order, so once the newest
    # entry before this transaction is sent, every older one is too.
    pending: tuple[OutboxEntry, ...] | None = None


def history_entry(op: Operation, before: BillingRecord, decision: Decision) -> HistoryEntry:
    """The audit entry every adapter appends for an applied operation."""
    return HistoryEntry(
        event_id=op.op_id,
        event_type=op.op_type,
        from_status=before.status,
        to_status=decision.record.status,
        decision=decision.kind,
        reason=decision.reason,
        trigger=decision.transition.trigger if decision.transition else None,
        version=decision.record.version,
        at=op.at,
        source=op.source,
    )


def outbox_entry(op: Operation, record: BillingRecord) -> OutboxEntry:
    """The entitlement-changed message to relay for the record's (new) version."""
    message = entitlement_message(record, op.op_id, op.at).model_copy(
        update={"trace_id": op.trace_id}
    )
    return OutboxEntry(
        customer_id=record.customer_id,
        version=record.version,
        payload=message.model_dump(mode="json"),
        causing_event_id=op.op_id,
        created_at=time.time(),
        trace_id=op.trace_id,
    )


class BillingRepository(Protocol):
    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        """Apply `decide` to the customer's record exactly once per `op.op_id`.

        `decide` is None for events that concern no customer (marker only).
        Raises TransientError on contention or unavailability.
        """
        ...

    def get_record(self, customer_id: str) -> BillingRecord | None: ...

    def customer_for_account(self, account_id: str) -> str | None: ...

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]: ...

    def pending_outbox(self, customer_id: str) -> list[OutboxEntry]:
        """Unsent outbox entries of one customer, oldest version first."""
        ...

    def mark_sent(self, customer_id: str, version: int, sent_at: float) -> None: ...

    def stale_outbox(self, older_than: float, limit: int = 500) -> list[OutboxEntry]:
        """Unsent entries of any customer created before `older_than` (the sweep)."""
        ...

    def is_processed(self, event_id: str) -> bool: ...

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        """Upsert by event id, counting attempts; returns what is stored."""
        ...

    def get_failure(self, event_id: str) -> FailureRecord | None: ...

    def list_failures(self, limit: int = 100) -> list[FailureRecord]: ...

    def list_customers(self, limit: int | None = None) -> list[BillingRecord]: ...

    def due_for_review(self, now: int, limit: int = 1000) -> list[str]:
        """Customers whose access may change with time alone: grace, access or override
        deadline at or before `now`. May include ones already re-evaluated (cheap noop)."""
        ...
