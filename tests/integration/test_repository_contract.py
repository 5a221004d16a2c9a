"""One behavioural suite, two adapters: the in-memory fake and Firestore on the emulator.

If the fake drifts from Firestore, unit tests built on the fake would lie; this suite is
what keeps them honest.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from functions.errors import Unstorable
from functions.ports import ApplyResult, BillingRepository, Operation
from schemas.documents import BillingRecord, FailureRecord
from schemas.entitlements import AccessLevel, AccountMessage, Entitlements, Limits
from statemachine.decision import Decision, Transition
from tests.support.fake_repository import FakeRepository

LIMITS = Limits(tables=5, custom_rules=0, seats=3, alert_channels=1, api_requests_per_day=0)


def activate(account_id: str | None = None):  # type: ignore[no-untyped-def]
    """A stand-in domain decision: becomes active, bumps the version."""

    def decide(record: BillingRecord) -> Decision:
        new = record.model_copy(
            update={
                "status": "active",
                "version": record.version + 1,
                "access": AccessLevel.FULL,
                "entitlements": Entitlements(plan="starter", limits=LIMITS),
                "message": AccountMessage(code="active", text="All good."),
                "account_id": account_id or record.account_id,
            }
        )
        return Decision(
            kind="applied",
            record=new,
            reason="test",
            transition=Transition("activate", record.status, "active"),
            entitlements_changed=True,
        )

    return decide


def noop(record: BillingRecord) -> Decision:
    return Decision(kind="noop", record=record, reason="nothing changes")


@pytest.fixture(params=["fake", pytest.param("firestore", marks=pytest.mark.emulator)])
def repo(request: pytest.FixtureRequest) -> Iterator[BillingRepository]:
    if request.param == "fake":
        yield FakeRepository()
        return
    request.getfixturevalue("emulators")
    yield FirestoreRepository(f"contract-{uuid.uuid4().hex[:10]}")


def op(op_id: str, customer: str | None = "cus_1", at: int = 1_700_000_000) -> Operation:
    return Operation(
        op_id=op_id, op_type="customer.subscription.updated", customer_id=customer, at=at
    )


def test_apply_writes_record_history_and_outbox_once(repo: BillingRepository) -> None:
    first = repo.apply(op("evt_1"), activate(), marker_ttl_days=35)
    second = repo.apply(op("evt_1"), activate(), marker_ttl_days=35)

    assert not first.duplicate and [e.version for e in first.pending or ()] == [1]
    assert second.duplicate and second.decision is None
    record = repo.get_record("cus_1")
    assert record is not None and record.status == "active" and record.version == 1
    history = repo.history("cus_1")
    assert [(h.event_id, h.from_status, h.to_status, h.decision) for h in history] == [
        ("evt_1", "none", "active", "applied")
    ]
    pending = repo.pending_outbox("cus_1")
    assert [(e.version, e.causing_event_id, e.sent) for e in pending] == [(1, "evt_1", False)]
    assert pending[0].payload["version"] == 1
    assert pending[0].payload["customer_id"] == "cus_1"
    assert repo.is_processed("evt_1")


def test_no_customer_writes_only_the_marker(repo: BillingRepository) -> None:
    result = repo.apply(op("evt_product", customer=None), None, marker_ttl_days=35)
    again = repo.apply(op("evt_product", customer=None), None, marker_ttl_days=35)
    assert not result.duplicate and result.decision is None
    assert again.duplicate
    assert repo.list_customers() == []


def test_noop_records_history_but_no_outbox(repo: BillingRepository) -> None:
    repo.apply(op("evt_1"), activate(), marker_ttl_days=35)
    result = repo.apply(op("evt_2", at=1_700_000_100), noop, marker_ttl_days=35)
    assert result.decision is not None and not result.decision.entitlements_changed
    assert [h.event_id for h in repo.history("cus_1")] == ["evt_2", "evt_1"]
    assert [e.version for e in repo.pending_outbox("cus_1")] == [1]


def test_outbox_versions_order_mark_sent_and_stale_query(repo: BillingRepository) -> None:
    repo.apply(op("evt_1"), activate(), marker_ttl_days=35)
    repo.apply(op("evt_2", at=1_700_000_001), activate(), marker_ttl_days=35)
    repo.apply(op("evt_3", customer="cus_2"), activate(), marker_ttl_days=35)
    assert [e.version for e in repo.pending_outbox("cus_1")] == [1, 2]

    repo.mark_sent("cus_1", 1, time.time())
    assert [e.version for e in repo.pending_outbox("cus_1")] == [2]
    stale = repo.stale_outbox(time.time() + 1)
    assert [(e.customer_id, e.version) for e in stale] == [("cus_1", 2), ("cus_2", 1)]
    assert repo.stale_outbox(time.time() - 3600) == []


def test_pending_is_the_whole_unsent_list_only_when_the_transaction_can_prove_it(
    repo: BillingRepository,
) -> None:
    def pending_versions(result: ApplyResult) -> list[int] | None:
        return None if result.pending is None else [e.version for e in result.pending]

    # A new customer has nothing older: the entry just written is all there is.
    first = repo.apply(op("evt_1"), activate(), marker_ttl_days=35)
    assert pending_versions(first) == [1]
    assert first.pending == tuple(repo.pending_outbox("cus_1"))
    # Version 1 still unsent (its relay failed): the next transaction cannot vouch.
    second = repo.apply(op("evt_2", at=1_700_000_001), activate(), marker_ttl_days=35)
    assert pending_versions(second) is None
    assert [e.version for e in repo.pending_outbox("cus_1")] == [1, 2]
    # Relayed in order: now the newest is sent, so the next change is alone again...
    repo.mark_sent("cus_1", 1, time.time())
    repo.mark_sent("cus_1", 2, time.time())
    third = repo.apply(op("evt_3", at=1_700_000_002), activate(), marker_ttl_days=35)
    assert pending_versions(third) == [3]
    # ...a change-free event proves an empty list, and a duplicate proves nothing.
    repo.mark_sent("cus_1", 3, time.time())
    assert (
        pending_versions(repo.apply(op("evt_4", at=1_700_000_003), noop, marker_ttl_days=35)) == []
    )
    assert repo.apply(op("evt_4"), noop, marker_ttl_days=35).pending is None


def test_account_link_is_created_and_found(repo: BillingRepository) -> None:
    assert repo.customer_for_account("acct_9") is None
    repo.apply(op("evt_1"), activate(account_id="acct_9"), marker_ttl_days=35)
    assert repo.customer_for_account("acct_9") == "cus_1"
    record = repo.get_record("cus_1")
    assert record is not None and record.account_id == "acct_9"


def test_row8_the_first_link_wins_and_a_second_customer_gets_an_anomaly(
    repo: BillingRepository,
) -> None:
    repo.apply(op("evt_1"), activate(account_id="acct_9"), marker_ttl_days=35)
    second = repo.apply(
        op("evt_2", customer="cus_2"), activate(account_id="acct_9"), marker_ttl_days=35
    )

    assert repo.customer_for_account("acct_9") == "cus_1"
    assert second.decision is not None and second.decision.kind == "anomaly"
    assert not second.decision.entitlements_changed and second.pending in (None, ())
    taken = repo.get_record("cus_2")
    assert taken is not None and taken.account_id is None and taken.status == "none"
    assert [(a.code, a.event_id) for a in taken.anomalies] == [("account_taken", "evt_2")]
    assert repo.with_open_anomalies() == ["cus_2"]
    assert [h.decision for h in repo.history("cus_2")] == ["anomaly"]
    assert repo.pending_outbox("cus_2") == []


@pytest.mark.parametrize("bad", ["a/b", "..", "__x__", "x" * 1501])
def test_row1_keys_firestore_cannot_store_are_permanent_and_write_nothing(
    repo: BillingRepository, bad: str
) -> None:
    with pytest.raises(Unstorable):
        repo.apply(op("evt_1", customer=bad), activate(), marker_ttl_days=35)
    with pytest.raises(Unstorable):
        repo.apply(op(bad), activate(), marker_ttl_days=35)
    with pytest.raises(Unstorable):
        repo.apply(op("evt_2"), activate(account_id=bad), marker_ttl_days=35)
    assert repo.list_customers() == [] and not repo.is_processed("evt_1")
    assert not repo.is_processed("evt_2")


@pytest.mark.parametrize("key", ["evt_" + "a" * 10_000, "msg-a/b", "..", "__x__"])
def test_row1_a_failure_record_is_always_writable(repo: BillingRepository, key: str) -> None:
    failure = FailureRecord(
        event_id=key,
        reason_code="invalid_payload",
        reason="id too long",
        first_failed_at=1.0,
        last_failed_at=1.0,
        dead_lettered=True,
    )
    stored = repo.record_failure(failure)
    assert stored.event_id == key
    assert repo.get_failure(key) == stored
    assert [f.event_id for f in repo.list_failures()] == [key]


def test_record_failure_counts_attempts(repo: BillingRepository) -> None:
    def failure(at: float, dead: bool = False) -> FailureRecord:
        return FailureRecord(
            event_id="evt_bad",
            reason_code="transient",
            reason="boom",
            first_failed_at=at,
            last_failed_at=at,
            dead_lettered=dead,
        )

    repo.record_failure(failure(100.0))
    stored = repo.record_failure(failure(200.0, dead=True))
    assert (stored.attempts, stored.first_failed_at, stored.last_failed_at) == (2, 100.0, 200.0)
    assert stored.dead_lettered
    assert repo.get_failure("evt_bad") == stored
    assert [f.event_id for f in repo.list_failures()] == ["evt_bad"]


def test_concurrent_duplicates_apply_once(repo: BillingRepository) -> None:
    results = []

    def worker() -> None:
        for _ in range(20):  # transient contention is retried, as Pub/Sub would
            try:
                results.append(repo.apply(op("evt_same"), activate(), marker_ttl_days=35))
                return
            except Exception:
                time.sleep(0.05)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 4
    assert sum(not r.duplicate for r in results) == 1
    record = repo.get_record("cus_1")
    assert record is not None and record.version == 1
    assert len(repo.history("cus_1")) == 1
    assert len(repo.pending_outbox("cus_1")) == 1


def test_due_for_review_finds_passed_deadlines(repo: BillingRepository) -> None:
    def with_deadlines(**fields: int) -> Any:
        def decide(record: BillingRecord) -> Decision:
            return Decision(kind="noop", record=record.model_copy(update=fields), reason="t")

        return decide

    repo.apply(
        op("evt_1", customer="cus_grace"), with_deadlines(grace_until=100), marker_ttl_days=35
    )
    repo.apply(
        op("evt_2", customer="cus_end"), with_deadlines(access_until=300), marker_ttl_days=35
    )
    repo.apply(op("evt_3", customer="cus_none"), noop, marker_ttl_days=35)

    assert repo.due_for_review(50) == []
    assert repo.due_for_review(100) == ["cus_grace"]
    assert repo.due_for_review(1000) == ["cus_end", "cus_grace"]


def test_open_anomalies_are_listed_longest_open_first(repo: BillingRepository) -> None:
    def opened(at: int | None) -> Any:
        def decide(record: BillingRecord) -> Decision:
            updated = record.model_copy(update={"anomaly_open_since": at})
            return Decision(kind="noop", record=updated, reason="t")

        return decide

    repo.apply(op("evt_1", customer="cus_late"), opened(300), marker_ttl_days=35)
    repo.apply(op("evt_2", customer="cus_early"), opened(100), marker_ttl_days=35)
    repo.apply(op("evt_3", customer="cus_clear"), opened(None), marker_ttl_days=35)

    assert repo.with_open_anomalies() == ["cus_early", "cus_late"]
    assert repo.with_open_anomalies(limit=1) == ["cus_early"]
    repo.apply(op("evt_4", customer="cus_early"), opened(None), marker_ttl_days=35)
    assert repo.with_open_anomalies() == ["cus_late"]


def test_batch_reads_return_only_what_exists(repo: BillingRepository) -> None:
    repo.apply(op("evt_1", customer="cus_1"), activate(account_id="acct_1"), marker_ttl_days=35)
    repo.apply(op("evt_2", customer="cus_2"), activate(account_id="acct_2"), marker_ttl_days=35)
    records = repo.get_records(["cus_2", "cus_missing", "cus_1", "cus_2"])
    assert sorted(records) == ["cus_1", "cus_2"]
    assert records["cus_2"].account_id == "acct_2"
    assert repo.customers_for_accounts(["acct_1", "acct_nobody", "acct_2"]) == {
        "acct_1": "cus_1",
        "acct_2": "cus_2",
    }
    assert repo.get_records([]) == {} and repo.customers_for_accounts([]) == {}


def test_records_page_walks_every_record_once_in_order(repo: BillingRepository) -> None:
    customers = [f"cus_{n:02d}" for n in (7, 1, 4, 9, 2)]
    for n, customer in enumerate(customers):
        repo.apply(op(f"evt_{n}", customer=customer), activate(), marker_ttl_days=35)
    seen: list[str] = []
    after: str | None = None
    while page := repo.records_page(after, limit=2):
        assert len(page) <= 2
        seen.extend(r.customer_id for r in page)
        after = page[-1].customer_id
    assert seen == sorted(customers)
