"""Baseline (3): the same Firestore transactions our subscriber runs, without our code.

The writes are pre-built dicts, computed before the clock starts by running the domain
in memory over the same events, so each raw transaction does exactly the reads and
writes FirestoreRepository.apply does for that event (marker and record in one batched
read, then the customer's newest outbox entry; marker, record, history and, when
entitlements changed, outbox writes) and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore

import statemachine
from schemas.documents import BillingRecord, HistoryEntry, OutboxEntry, ProcessedEvent
from schemas.stripe import StripeEvent
from statemachine.decision import Policy

_TTL = timedelta(days=35)


@dataclass(frozen=True)
class Writes:
    customer_id: str
    event_id: str
    marker: dict[str, Any]
    record: dict[str, Any]
    history: dict[str, Any]
    outbox: dict[str, Any] | None
    outbox_id: str | None
    newest_outbox_id: str | None  # the entry apply reads to prove the outbox backlog-free


def precompute(events: list[dict[str, Any]], policy: Policy) -> list[Writes]:
    """The documents apply would write for each event (events of a customer in order)."""
    records: dict[str, BillingRecord] = {}
    out: list[Writes] = []
    expire_at = datetime.now(UTC) + _TTL
    for raw in events:
        event = StripeEvent.model_validate(raw)
        customer = event.customer_id
        if customer is None:
            raise ValueError(f"bench event {event.id} has no customer")
        current = records.get(customer) or BillingRecord(customer_id=customer)
        decision = statemachine.decide(current, event, policy)
        new = decision.record
        records[customer] = new
        marker = ProcessedEvent(
            event_id=event.id,
            event_type=event.type,
            customer_id=customer,
            decision=decision.kind,
            processed_at=time.time(),
            expire_at=expire_at,
        ).model_dump(mode="json")
        marker["expire_at"] = expire_at
        history = HistoryEntry(
            event_id=event.id,
            event_type=event.type,
            from_status=current.status,
            to_status=new.status,
            decision=decision.kind,
            reason=decision.reason,
            trigger=decision.transition.trigger if decision.transition else None,
            version=new.version,
            at=event.created,
            source="webhook",
        ).model_dump(mode="json")
        outbox = outbox_id = None
        if decision.entitlements_changed:
            created = time.time()
            message = statemachine.entitlement_message(
                new, event.id, event.created, published_at=int(created), trace_id=event.id
            )
            outbox = OutboxEntry(
                customer_id=customer,
                version=new.version,
                payload=message.model_dump(mode="json"),
                causing_event_id=event.id,
                created_at=created,
            ).model_dump(mode="json")
            outbox_id = f"{new.version:012d}"
        out.append(
            Writes(
                customer_id=customer,
                event_id=event.id,
                marker=marker,
                record=new.model_dump(mode="json"),
                history=history,
                outbox=outbox,
                outbox_id=outbox_id,
                newest_outbox_id=f"{current.version:012d}" if current.version else None,
            )
        )
    return out


def raw_apply(db: firestore.Client, writes: Writes) -> None:
    marker_ref = db.collection("processed_events").document(writes.event_id)
    cust_ref = db.collection("customers").document(writes.customer_id)

    @firestore.transactional
    def run(txn: firestore.Transaction) -> None:
        list(txn.get_all([marker_ref, cust_ref]))
        if writes.newest_outbox_id is not None:
            cust_ref.collection("outbox").document(writes.newest_outbox_id).get(transaction=txn)
        txn.create(marker_ref, writes.marker)
        txn.set(cust_ref, writes.record)
        txn.set(cust_ref.collection("history").document(writes.event_id), writes.history)
        if writes.outbox is not None and writes.outbox_id is not None:
            txn.create(cust_ref.collection("outbox").document(writes.outbox_id), writes.outbox)

    run(db.transaction(max_attempts=5))
