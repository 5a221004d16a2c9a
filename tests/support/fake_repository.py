"""In-memory BillingRepository for unit tests; the contract suite holds it to the same
behaviour as the Firestore adapter (tests/integration/test_repository_contract.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from functions.adapters.google_errors import document_id
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
)
from schemas.ids import storable_key


def is_due(record: BillingRecord, now: int) -> bool:
    """What Firestore's due query ranges over: a grace, access or override deadline passed
    (the repository contract suite holds the emulator to the same answer)."""
    deadlines = (
        record.grace_until,
        record.access_until,
        record.override.expires_at if record.override else None,
    )
    return any(d is not None and d <= now for d in deadlines)


class FakeRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, BillingRecord] = {}
        self.history_entries: dict[str, list[HistoryEntry]] = {}
        self.outbox: dict[tuple[str, int], OutboxEntry] = {}
        self.accounts: dict[str, AccountLink] = {}
        self.markers: set[str] = set()
        self.failures: dict[str, FailureRecord] = {}

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        with self._lock:
            document_id(op.op_id)  # Firestore refuses the marker's key before anything else
            if op.op_id in self.markers:
                return ApplyResult(duplicate=True, decision=None)
            if decide is None or op.customer_id is None:
                self.markers.add(op.op_id)
                return ApplyResult(duplicate=False, decision=None)
            document_id(op.customer_id)
            current = self.records.get(op.customer_id) or BillingRecord(customer_id=op.customer_id)
            decision = decide(current.model_copy(deep=True))
            claimed = decision.record.account_id
            if claimed and claimed != current.account_id:
                prior = self.accounts.get(document_id(claimed))
                owner = prior.customer_id if prior else None
                decision = first_link_wins(op, current, decision, owner)
            new = decision.record
            self.markers.add(op.op_id)
            self.records[op.customer_id] = new
            self.history_entries.setdefault(op.customer_id, []).append(
                history_entry(op, current, decision)
            )
            newest = self.outbox.get((op.customer_id, current.version))
            backlog_free = current.version == 0 or (newest is not None and newest.sent)
            written: tuple[OutboxEntry, ...] = ()
            if decision.entitlements_changed:
                entry = outbox_entry(op, new)
                self.outbox[(op.customer_id, new.version)] = entry
                written = (entry,)
            if new.account_id and new.account_id not in self.accounts:
                self.accounts[new.account_id] = AccountLink(
                    account_id=new.account_id, customer_id=op.customer_id, linked_at=op.at
                )
            return ApplyResult(
                duplicate=False,
                decision=decision,
                pending=written if backlog_free else None,
            )

    def get_record(self, customer_id: str) -> BillingRecord | None:
        return self.records.get(customer_id)

    def customer_for_account(self, account_id: str) -> str | None:
        link = self.accounts.get(document_id(account_id))
        return link.customer_id if link else None

    def get_records(self, customer_ids: Sequence[str]) -> dict[str, BillingRecord]:
        return {c: self.records[c] for c in customer_ids if c in self.records}

    def customers_for_accounts(self, account_ids: Sequence[str]) -> dict[str, str]:
        return {a: self.accounts[a].customer_id for a in account_ids if a in self.accounts}

    def records_page(self, after: str | None, limit: int) -> list[BillingRecord]:
        records = sorted(self.records.values(), key=lambda r: r.customer_id)
        return [r for r in records if after is None or r.customer_id > after][:limit]

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]:
        entries = self.history_entries.get(customer_id, [])
        return sorted(entries, key=lambda e: e.at, reverse=True)[:limit]

    def pending_outbox(self, customer_id: str) -> list[OutboxEntry]:
        entries = [e for (c, _), e in self.outbox.items() if c == customer_id and not e.sent]
        return sorted(entries, key=lambda e: e.version)

    def mark_sent(self, customer_id: str, version: int, sent_at: float) -> None:
        key = (customer_id, version)
        self.outbox[key] = self.outbox[key].model_copy(update={"sent": True, "sent_at": sent_at})

    def stale_outbox(self, older_than: float, limit: int = 500) -> list[OutboxEntry]:
        entries = [e for e in self.outbox.values() if not e.sent and e.created_at < older_than]
        return sorted(entries, key=lambda e: (e.customer_id, e.version))[:limit]

    def is_processed(self, event_id: str) -> bool:
        return event_id in self.markers

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        key = storable_key(failure.event_id)
        prior = self.failures.get(key)
        stored = failure
        if prior:
            stored = failure.model_copy(
                update={
                    "attempts": prior.attempts + 1,
                    "first_failed_at": prior.first_failed_at,
                    "dead_lettered": prior.dead_lettered or failure.dead_lettered,
                }
            )
        self.failures[key] = stored
        return stored

    def get_failure(self, event_id: str) -> FailureRecord | None:
        return self.failures.get(storable_key(event_id))

    def list_failures(self, limit: int = 100) -> list[FailureRecord]:
        return sorted(self.failures.values(), key=lambda f: f.last_failed_at, reverse=True)[:limit]

    def list_customers(self, limit: int | None = None) -> list[BillingRecord]:
        records = sorted(self.records.values(), key=lambda r: r.customer_id)
        return records[:limit] if limit else records

    def due_for_review(self, now: int, limit: int = 1000) -> list[str]:
        return sorted(c for c, r in self.records.items() if is_due(r, now))[:limit]

    def with_open_anomalies(self, limit: int = 100) -> list[str]:
        open_ = [r for r in self.records.values() if r.anomaly_open_since is not None]
        open_.sort(key=lambda r: (r.anomaly_open_since or 0, r.customer_id))
        return [r.customer_id for r in open_][:limit]
