"""Firestore adapter of the BillingRepository port (layout in schemas/documents.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from functions.adapters.firestore_client import TIMEOUT, FirestoreAdapter
from functions.adapters.google_errors import document_id, google_call
from functions.ports import (
    ApplyResult,
    DecideFn,
    Operation,
    first_link_wins,
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
from schemas.ids import storable_key

CUSTOMERS = "customers"
HISTORY = "history"
OUTBOX = "outbox"
ACCOUNTS = "accounts"
PROCESSED = "processed_events"
FAILURES = "failures"


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json")
    return data


def _prior_link(snap: Any) -> AccountLink | None:
    return AccountLink.model_validate(snap.to_dict()) if snap.exists else None


class FirestoreRepository(FirestoreAdapter):
    def _customer(self, customer_id: str) -> Any:
        return self._client().collection(CUSTOMERS).document(document_id(customer_id))

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        db = self._client()
        marker_ref = db.collection(PROCESSED).document(document_id(op.op_id))
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
        db = self._client()
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
        link_ref = prior = None
        if decision.record.account_id and decision.record.account_id != current.account_id:
            link_ref = db.collection(ACCOUNTS).document(document_id(decision.record.account_id))
            prior = _prior_link(link_ref.get(transaction=txn, timeout=TIMEOUT))
            decision = first_link_wins(op, current, decision, prior.customer_id if prior else None)
        new = decision.record
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
        if link_ref is not None and prior is None:
            # First writer wins: an existing link (checkout's, or this customer's) is kept.
            link = AccountLink(
                account_id=new.account_id or "", customer_id=new.customer_id, linked_at=op.at
            )
            txn.create(link_ref, _dump(link))
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
            data = self._read(self._client().collection(ACCOUNTS).document(document_id(account_id)))
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
        refs = [accounts.document(document_id(a)) for a in dict.fromkeys(account_ids)]
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
            ref = self._client().collection(PROCESSED).document(document_id(event_id))
            snap = ref.get(timeout=TIMEOUT)
        return bool(snap.exists)

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        db = self._client()
        # Always writable: a key Firestore would refuse (10 KB, a '/') is hashed.
        ref = db.collection(FAILURES).document(storable_key(failure.event_id))

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
            ref = self._client().collection(FAILURES).document(storable_key(event_id))
            snap = ref.get(timeout=TIMEOUT)
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
