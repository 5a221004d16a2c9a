"""Firestore adapter of the BillingRepository port (layout in schemas/documents.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from functions.errors import TransientError
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

# Errors where the same call may succeed later: Pub/Sub should redeliver.
_TRANSIENT = (
    gexc.Aborted,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.RetryError,
    gexc.Conflict,  # AlreadyExists on the marker: a concurrent twin won; redelivery dedupes
    gexc.GatewayTimeout,
    gexc.Unknown,
)
_TIMEOUT = 10.0


@contextmanager
def _transient_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        raise TransientError(f"firestore {what} failed: {type(exc).__name__}: {exc}") from exc


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json")
    return data


class FirestoreRepository:
    def __init__(self, project: str, database: str = "(default)") -> None:
        self._project = project
        self._database = database
        self._db: firestore.Client | None = None

    def _client(self) -> firestore.Client:
        if self._db is None:
            self._db = firestore.Client(project=self._project, database=self._database)
        return self._db

    def _customer(self, customer_id: str) -> Any:
        return self._client().collection(CUSTOMERS).document(customer_id)

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        db = self._client()
        marker_ref = db.collection(PROCESSED).document(op.op_id)
        cust_ref = self._customer(op.customer_id) if op.customer_id else None
        expire_at = datetime.now(UTC) + timedelta(days=marker_ttl_days)

        @firestore.transactional
        def run(txn: firestore.Transaction) -> ApplyResult:
            # All reads come before all writes: Firestore transactions require it.
            if decide is None or cust_ref is None:
                if marker_ref.get(transaction=txn, timeout=_TIMEOUT).exists:
                    return ApplyResult(duplicate=True, decision=None, outbox_version=None)
                txn.create(marker_ref, self._marker(op, "ignored", expire_at))
                return ApplyResult(duplicate=False, decision=None, outbox_version=None)
            # Marker and record in one round trip; get_all yields in no particular order.
            snaps = {
                s.reference.path: s for s in txn.get_all([marker_ref, cust_ref], timeout=_TIMEOUT)
            }
            if snaps[marker_ref.path].exists:
                return ApplyResult(duplicate=True, decision=None, outbox_version=None)
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
                link_ref = db.collection(ACCOUNTS).document(new.account_id)
                link_snap = link_ref.get(transaction=txn, timeout=_TIMEOUT)
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
                txn.create(
                    cust_ref.collection(OUTBOX).document(f"{new.version:012d}"), _dump(entry)
                )
                written = (entry,)
            if link_ref is not None and new.account_id:
                prior = (
                    link_snap.to_dict() if link_snap is not None and link_snap.exists else None
                ) or {}
                link = AccountLink(
                    account_id=new.account_id,
                    customer_id=new.customer_id,
                    linked_at=op.at,
                    trial_used=bool(prior.get("trial_used", False)),
                )
                txn.set(link_ref, _dump(link))
            return ApplyResult(
                duplicate=False,
                decision=decision,
                outbox_version=written[0].version if written else None,
                pending=written if backlog_free else None,
            )

        with _transient_errors("transaction"):
            result: ApplyResult = run(db.transaction(max_attempts=5))
        return result

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
        snap = ref.get(transaction=txn, timeout=_TIMEOUT)
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
        with _transient_errors("get record"):
            snap = self._customer(customer_id).get(timeout=_TIMEOUT)
        return BillingRecord.model_validate(snap.to_dict()) if snap.exists else None

    def customer_for_account(self, account_id: str) -> str | None:
        with _transient_errors("get account"):
            snap = self._client().collection(ACCOUNTS).document(account_id).get(timeout=_TIMEOUT)
        if not snap.exists:
            return None
        return AccountLink.model_validate(snap.to_dict()).customer_id

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]:
        query = (
            self._customer(customer_id)
            .collection(HISTORY)
            .order_by("at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        with _transient_errors("history"):
            return [
                HistoryEntry.model_validate(s.to_dict()) for s in query.stream(timeout=_TIMEOUT)
            ]

    def pending_outbox(self, customer_id: str) -> list[OutboxEntry]:
        # Equality-only query (no composite index); a customer has few unsent entries.
        query = (
            self._customer(customer_id)
            .collection(OUTBOX)
            .where(filter=FieldFilter("sent", "==", False))
        )
        with _transient_errors("pending outbox"):
            entries = [
                OutboxEntry.model_validate(s.to_dict()) for s in query.stream(timeout=_TIMEOUT)
            ]
        return sorted(entries, key=lambda e: e.version)

    def mark_sent(self, customer_id: str, version: int, sent_at: float) -> None:
        ref = self._customer(customer_id).collection(OUTBOX).document(f"{version:012d}")
        with _transient_errors("mark sent"):
            ref.update({"sent": True, "sent_at": sent_at}, timeout=_TIMEOUT)

    def stale_outbox(self, older_than: float, limit: int = 500) -> list[OutboxEntry]:
        query = (
            self._client()
            .collection_group(OUTBOX)
            .where(filter=FieldFilter("sent", "==", False))
            .where(filter=FieldFilter("created_at", "<", older_than))
            .limit(limit)
        )
        with _transient_errors("stale outbox"):
            entries = [
                OutboxEntry.model_validate(s.to_dict()) for s in query.stream(timeout=_TIMEOUT)
            ]
        return sorted(entries, key=lambda e: (e.customer_id, e.version))

    def is_processed(self, event_id: str) -> bool:
        with _transient_errors("get marker"):
            snap = self._client().collection(PROCESSED).document(event_id).get(timeout=_TIMEOUT)
        return bool(snap.exists)

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        db = self._client()
        ref = db.collection(FAILURES).document(failure.event_id)

        @firestore.transactional
        def run(txn: firestore.Transaction) -> FailureRecord:
            snap = ref.get(transaction=txn, timeout=_TIMEOUT)
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

        with _transient_errors("record failure"):
            result: FailureRecord = run(db.transaction(max_attempts=5))
        return result

    def get_failure(self, event_id: str) -> FailureRecord | None:
        with _transient_errors("get failure"):
            snap = self._client().collection(FAILURES).document(event_id).get(timeout=_TIMEOUT)
        return FailureRecord.model_validate(snap.to_dict()) if snap.exists else None

    def list_failures(self, limit: int = 100) -> list[FailureRecord]:
        query = (
            self._client()
            .collection(FAILURES)
            .order_by("last_failed_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        with _transient_errors("list failures"):
            return [
                FailureRecord.model_validate(s.to_dict()) for s in query.stream(timeout=_TIMEOUT)
            ]

    def list_customers(self, limit: int | None = None) -> list[BillingRecord]:
        query = self._client().collection(CUSTOMERS).order_by("customer_id")
        if limit:
            query = query.limit(limit)
        with _transient_errors("list customers"):
            return [
                BillingRecord.model_validate(s.to_dict()) for s in query.stream(timeout=_TIMEOUT)
            ]

    def due_for_review(self, now: int, limit: int = 1000) -> list[str]:
        customers = self._client().collection(CUSTOMERS)
        due: set[str] = set()
        with _transient_errors("due for review"):
            # Single-field range filters: served by Firestore's automatic indexes.
            for field in ("grace_until", "access_until", "override.expires_at"):
                query = customers.where(filter=FieldFilter(field, "<=", now)).limit(limit)
                due.update(snap.id for snap in query.stream(timeout=_TIMEOUT))
        return sorted(due)
