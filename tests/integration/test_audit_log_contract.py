"""One behavioural suite, two audit logs: the in-memory fake and FirestoreAuditLog on the
emulator.

Operator-command tests trust FakeAuditLog; this suite is what keeps it honest. Only the
"firestore" variant needs the emulators, so only it carries the emulator marker:
`-m "not emulator"` still checks the fake against the contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.adapters.firestore_audit import FirestoreAuditLog
from functions.errors import TransientError
from functions.ports import AuditLog
from schemas.documents import AuditRecord
from tests.support.fake_audit import FakeAuditLog

T0 = 1_700_000_000.0


@pytest.fixture(params=["fake", pytest.param("firestore", marks=pytest.mark.emulator)])
def log(request: pytest.FixtureRequest) -> Iterator[AuditLog]:
    if request.param == "fake":
        yield FakeAuditLog()
        return
    request.getfixturevalue("emulators")
    yield FirestoreAuditLog(f"contract-{uuid.uuid4().hex[:10]}")


def record(
    audit_id: str,
    at: float,
    *,
    action: str = "dlq.replay",
    target: str = "cus_1",
    **details: Any,
) -> AuditRecord:
    return AuditRecord(
        audit_id=audit_id,
        actor="alice@example.com",
        action=action,
        target=target,
        reason="on-call",
        details=details,
        at=at,
    )


def test_an_empty_log_lists_nothing(log: AuditLog) -> None:
    assert log.list() == []
    assert log.list(target="cus_1", action="dlq.replay") == []


def test_write_returns_the_record_and_list_reads_it_back_intact(log: AuditLog) -> None:
    written = record(
        "a1",
        T0 + 0.125,
        republished=["evt_1", "evt_2"],
        failed={"evt_3": "TransientError: publish failed"},
        nested={"count": 2, "ratio": 0.5, "none": None, "text": "ü€😀"},
    )

    assert log.write(written) == written
    assert log.list() == [written]


def test_details_come_back_as_stored_json(log: AuditLog) -> None:
    log.write(record("a1", T0, event_ids=("evt_1", "evt_2")))

    (stored,) = log.list()
    assert stored.details == {"event_ids": ["evt_1", "evt_2"]}


def test_list_is_newest_first_and_limit_keeps_the_newest(log: AuditLog) -> None:
    # Written out of time order: the order comes from `at`, not from the writes.
    for audit_id, offset in [("a", 30), ("b", 10), ("c", 50), ("d", 20), ("e", 40)]:
        log.write(record(audit_id, T0 + offset))

    assert [r.audit_id for r in log.list()] == ["c", "e", "a", "d", "b"]
    assert [r.audit_id for r in log.list(limit=2)] == ["c", "e"]
    assert log.list(limit=0) == []


def test_the_default_limit_is_fifty_newest(log: AuditLog) -> None:
    for n in range(52):
        log.write(record(f"r{n:02d}", T0 + n))

    listed = log.list()

    assert [r.audit_id for r in listed] == [f"r{n:02d}" for n in range(51, 1, -1)]


def test_list_filters_by_target_by_action_and_by_both(log: AuditLog) -> None:
    log.write(record("a1", T0 + 1, action="override.set", target="cus_1"))
    log.write(record("a2", T0 + 2, action="reconcile", target="cus_1"))
    log.write(record("a3", T0 + 3, action="override.set", target="cus_2"))
    log.write(record("a4", T0 + 4, action="override.clear", target="cus_1"))

    def listed(**query: Any) -> list[str]:
        return [r.audit_id for r in log.list(**query)]

    assert listed(target="cus_1") == ["a4", "a2", "a1"]
    assert listed(action="override.set") == ["a3", "a1"]
    assert listed(target="cus_1", action="override.set") == ["a1"]
    assert listed(target="cus_1", limit=1) == ["a4"]
    assert listed(target="cus_9") == []
    assert listed(target="cus_2", action="reconcile") == []


def test_an_audit_id_is_written_once(log: AuditLog) -> None:
    # The trail is append-only: a second write under the same id never replaces the first.
    first = record("a1", T0, action="dlq.purge")
    log.write(first)

    with pytest.raises(TransientError):
        log.write(record("a1", T0 + 5, action="override.set", target="cus_2"))

    assert log.list() == [first]
