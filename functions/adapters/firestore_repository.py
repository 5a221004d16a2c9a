"""Firestore adapter of the BillingRepository port (layout in schemas/documents.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from functions.adapters.firestore_client import TIMEOUT, FirestoreAdapter
from functions.adapters.google_errors import google_call
from functions.ports import (
    ApplyResult,
    DecideFn,
    Operation,
    history_entry,
    outbox_entry,
)
from schemas.documents import (
    AccountLink,
    BillingRecord,
    FailureRecord,
    HistoryEntry,
    OutboxEntry,
    ProcessedEvent,
)

CUSTOMERS = "customers"
HISTORY = "history"
OUTBOX = "outbox"
ACCOUNTS = "accounts"
PROCESSED = "processed_events"
FAILURES = "failures"


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json")
    return data


def _link(record: BillingRecord, at: int, prior_snap: Any) -> AccountLink:
    """The account link the record now names, keeping whether the trial was used."""
    prior = (prior_snap.to_dict() if prior_snap is not None and prior_snap.exists else None) or {}
    return AccountLink(
        account_id=record.account_id or "",
        customer_id=record.customer_id,
        linked_at=at,
        trial_used=bool(prior.get("trial_used", False)),
    )


class FirestoreRepository(FirestoreAdapter):
    def _customer(self, customer_id: str) -> Any:
        return self._client().collection(CUSTOMERS).document(customer_id)

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        db = self._client()
        marker_ref = db.collection(PROCESSED).document(op.op_id)
        expire_at = datetime.now(UTC) + timedelta(days=marker_ttl_days)

        @firestore.transactional
        def run(txn: firestore.Transaction) -> ApplyResult:
            if decide is None or not op.customer_id:
                return self._mark_only(txn, op, marker_ref, expire_at)
            return self._decide_and_write(txn, op, decide, marker_ref, expire_at)

        with google_call("firestore transaction"):
            result: ApplyResult = run(db.transaction(max_attempts=5))
        return result

    def _mark_only(
        self, txn: firestore.Transaction, op: Operation, marker_ref: Any, expire_at: datetime
    ) -> ApplyResult:
        if marker_ref.get(transaction=txn, timeout=TIMEOUT).exists:
            return ApplyResult(duplicate=True, decision=None)
        txn.create(marker_ref, self._marker(op, "ignored", expire_at))
        return ApplyResult(duplicate=False, decision=None)

    def _decide_and_write(
        self,
        txn: firestore.Transaction,
        op: Operation,
        decide: DecideFn,
        marker_ref: Any,
        expire_at: datetime,
    ) -> ApplyResult:
        # All reads come before all writes: Firestore transactions require it.
        cust_ref = self._customer(op.customer_id or "")
        # Marker and record in one round trip; get_all yields in no particular order.
        snaps = {s.reference.path: s for s in txn.get_all([marker_ref, cust_ref], timeout=TIMEOUT)}
        if snaps[marker_ref.path].exists:
            return ApplyResult(duplicate=True, decision=None)
        snap = snaps[cust_ref.path]
        current = (
            BillingRecord.model_validate(snap.to_dict())
            if snap.exists
            else BillingRecord(customer_id=cust_ref.id)
        )
        decision = decide(current)
        new = decision.record
        link_ref = link_snap = None
        if new.account_id and new.account_id != current.account_id:
            link_ref = self._client().collection(ACCOUNTS).document(new.account_id)
            link_snap = link_ref.get(transaction=txn, timeout=TIMEOUT)
        backlog_free = self._newest_entry_sent(txn, cust_ref, current.version)

        txn.create(marker_ref, self._marker(op, decision.kind, expire_at))
        txn.set(cust_ref, _dump(new))
        txn.set(
            cust_ref.collection(HISTORY).document(op.op_id),
            _dump(history_entry(op, current, decision)),
        )
        written: tuple[OutboxEntry, ...] = ()
        if decision.entitlements_changed:
            entry = outbox_entry(op, new)
            txn.create(cust_ref.collection(OUTBOX).document(f"{new.version:012d}"), _dump(entry))
            written = (entry,)
        if link_ref is not None:
            txn.set(link_ref, _dump(_link(new, op.at, link_snap)))
        return ApplyResult(
            duplicate=False, decision=decision, pending=written if backlog_free else None
        )

    @staticmethod
    def _newest_entry_sent(txn: firestore.Transaction, cust_ref: Any, version: int) -> bool:
        """Whether the customer's newest outbox entry before this transaction is sent.

        Versions are contiguous (each bump writes its entry) and relays mark them sent in
        order, so a sent newest entry means nothing older is waiting either. Read inside
        the transaction, which replaces a query of the outbox after every commit.
        """
        if version == 0:
            return True
        ref = cust_ref.collection(OUTBOX).document(f"{version:012d}")
        snap = ref.get(transaction=txn, timeout=TIMEOUT)
        return bool(snap.exists and (snap.to_dict() or {}).get("sent") is True)

    @staticmethod
    def _marker(op: Operation, decision: str, expire_at: datetime) -> dict[str, Any]:
        marker = ProcessedEvent(
            event_id=op.op_id,
            event_type=op.op_type,
            customer_id=op.customer_id,
            decision=decision,
            processed_at=time.time(),
            expire_at=expire_at,
        )
        data = _dump(marker)
        data["expire_at"] = expire_at  # TTL policies need a real timestamp, not a string
        return data

    def get_record(self, customer_id: str) -> BillingRecord | None:
        with google_call("firestore get record"):
            data = self._read(self._customer(customer_id))
        return BillingRecord.model_validate(data) if data is not None else None

    def customer_for_account(self, account_id: str) -> str | None:
        with google_call("firestore get account"):
            data = self._read(self._client().collection(ACCOUNTS).document(account_id))
        return AccountLink.model_validate(data).customer_id if data is not None else None

    def get_records(self, customer_ids: Sequence[str]) -> dict[str, BillingRecord]:
        refs = [self._customer(c) for c in dict.fromkeys(customer_ids)]
        if not refs:
            return {}
        with google_call("firestore get records"):
            snaps = list(self._client().get_all(refs, timeout=TIMEOUT))
        return {s.id: BillingRecord.model_validate(s.to_dict()) for s in snaps if s.exists}

    def customers_for_accounts(self, account_ids: Sequence[str]) -> dict[str, str]:
        accounts = self._client().collection(ACCOUNTS)
        refs = [accounts.document(a) for a in dict.fromkeys(account_ids)]
        if not refs:
            return {}
        with google_call("firestore get accounts"):
            snaps = list(self._client().get_all(refs, timeout=TIMEOUT))
        return {
            s.id: AccountLink.model_validate(s.to_dict()).customer_id for s in snaps if s.exists
        }

    def records_page(self, after: str | None, limit: int) -> list[BillingRecord]:
        query = self._client().collection(CUSTOMERS).order_by("customer_id")
        if after is not None:
            query = query.start_after({"customer_id": after})
        with google_call("firestore records page"):
            return [
                BillingRecord.model_validate(s.to_dict())
                for s in query.limit(limit).stream(timeout=TIMEOUT)
            ]

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]:
        query = (
            self._customer(customer_id)
            .collection(HISTORY)
            .order_by("at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        with google_call("firestore history"):
            return [HistoryEntry.model_validate(s.to_dict()) for s in query.stream(timeout=TIMEOUT)]

    def pending_outbox(self, customer_id: str) -> list[OutboxEntry]:
        # Equality-only query (no composite index); a customer has few unsent entries.
        query = (
            self._customer(customer_id)
            .collection(OUTBOX)
            .where(filter=FieldFilter("sent", "==", False))
        )
        with google_call("firestore pending outbox"):
            entries = [
                OutboxEntry.model_validate(s.to_dict()) for s in query.stream(timeout=TIMEOUT)
            ]
        return sorted(entries, key=lambda e: e.version)

    def mark_sent(self, customer_id: str, version: int, sent_at: float) -> None:
        ref = self._customer(customer_id).collection(OUTBOX).document(f"{version:012d}")
        with google_call("firestore mark sent"):
            ref.update({"sent": True, "sent_at": sent_at}, timeout=TIMEOUT)

    def stale_outbox(self, older_than: float, limit: int = 500) -> list[OutboxEntry]:
        query = (
            self._client()
            .collection_group(OUTBOX)
            .where(filter=FieldFilter("sent", "==", False))
            .where(filter=FieldFilter("created_at", "<", older_than))
            .limit(limit)
        )
        with google_call("firestore stale outbox"):
            entries = [
                OutboxEntry.model_validate(s.to_dict()) for s in query.stream(timeout=TIMEOUT)
            ]
        return sorted(entries, key=lambda e: (e.customer_id, e.version))

    def is_processed(self, event_id: str) -> bool:
        with google_call("firestore get marker"):
            snap = self._client().collection(PROCESSED).document(event_id).get(timeout=TIMEOUT)
        return bool(snap.exists)

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        db = self._client()
        ref = db.collection(FAILURES).document(failure.event_id)

        @firestore.transactional
        def run(txn: firestore.Transaction) -> FailureRecord:
            snap = ref.get(transaction=txn, timeout=TIMEOUT)
            stored = failure
            if snap.exists:
                prior = FailureRecord.model_validate(snap.to_dict())
                stored = failure.model_copy(
                    update={
                        "attempts": prior.attempts + 1,
                        "first_failed_at": prior.first_failed_at,
                        "dead_lettered": prior.dead_lettered or failure.dead_lettered,
                    }
                )
            txn.set(ref, _dump(stored))
            return stored

        with google_call("firestore record failure"):
            result: FailureRecord = run(db.transaction(max_attempts=5))
        return result

    def get_failure(self, event_id: str) -> FailureRecord | None:
        with google_call("firestore get failure"):
            snap = self._client().collection(FAILURES).document(event_id).get(timeout=TIMEOUT)
        return FailureRecord.model_validate(snap.to_dict()) if snap.exists else None

    def list_failures(self, limit: int = 100) -> list[FailureRecord]:
        query = (
            self._client()
            .collection(FAILURES)
            .order_by("last_failed_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        with google_call("firestore list failures"):
            return [
                FailureRecord.model_validate(s.to_dict()) for s in query.stream(timeout=TIMEOUT)
            ]

    def list_customers(self, limit: int | None = None) -> list[BillingRecord]:
        query = self._client().collection(CUSTOMERS).order_by("customer_id")
        if limit:
            query = query.limit(limit)
        with google_call("firestore list customers"):
            return [
                BillingRecord.model_validate(s.to_dict()) for s in query.stream(timeout=TIMEOUT)
            ]

    def due_for_review(self, now: int, limit: int = 1000) -> list[str]:
        customers = self._client().collection(CUSTOMERS)
        due: set[str] = set()
        with google_call("firestore due for review"):
            # Single-field range filters: served by Firestore's automatic indexes.
            for field in ("grace_until", "access_until", "override.expires_at"):
                query = customers.where(filter=FieldFilter(field, "<=", now)).limit(limit)
                due.update(snap.id for snap in query.stream(timeout=TIMEOUT))
        return sorted(due)

    def with_open_anomalies(self, limit: int = 100) -> list[str]:
        # Null sorts outside a range filter: records without an open anomaly never match.
        query = (
            self._client()
            .collection(CUSTOMERS)
            .where(filter=FieldFilter("anomaly_open_since", ">", 0))
            .order_by("anomaly_open_since")
            .limit(limit)
        )
        with google_call("firestore customers with open anomalies"):
            return [snap.id for snap in query.stream(timeout=TIMEOUT)]
