"""Exactly one effect per event, and every entitlement version delivered, across crashes.

The real Subscriber runs in-process against the Firestore and Pub/Sub emulators. Crashes
are injected by wrapping the ports (not the Google clients): a wrapper raises where the
process would have died, then the message is handed to the subscriber again, as Pub/Sub
redelivers anything that was not acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.errors import TransientError
from functions.ports import ApplyResult, DecideFn, Operation
from functions.services.subscriber import IncomingMessage
from infra.local.scenarios import build
from tests.integration.subscriber_support import (
    entitlements,
    make_subscriber,
    message,
    new_project,
    versions_after_dedupe,
)

pytestmark = pytest.mark.emulator


@pytest.fixture
def project(emulators: Any) -> tuple[str, Any]:
    return new_project()


def deliver_until_acked(handle: Any, msg: IncomingMessage, attempts: int = 5) -> int:
    """Redeliver like Pub/Sub until the handler returns; returns the failures seen."""
    failures = 0
    for _ in range(attempts):
        try:
            handle(msg)
            return failures
        except TransientError:
            failures += 1
    raise AssertionError(f"not acknowledged after {attempts} deliveries")


def test_same_event_ten_times_sequential_and_concurrent_has_one_effect(
    project: tuple[str, Any],
) -> None:
    name, settings = project
    subscriber = make_subscriber(name, settings)
    scenario = build("checkout_active", customer_id="cus_dup", account_id="acct_dup")
    first = scenario.events[0]
    msg = message(first)

    outcomes = [subscriber.handle(msg).decision for _ in range(10)]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            deliver_until_acked(subscriber.handle, msg)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert outcomes[0] != "duplicate" and outcomes[1:] == ["duplicate"] * 9
    repo = FirestoreRepository(name)
    assert len(repo.history("cus_dup")) == 1
    published = entitlements(name)
    assert len([r for r in published if r.customer_id == "cus_dup"]) <= 1
    record = repo.get_record("cus_dup")
    assert record is not None
    assert versions_after_dedupe(published).get("cus_dup", []) == list(range(1, record.version + 1))


class CrashingPublisher:
    """Publishes for real, but 'crashes' before or after chosen publishes."""

    def __init__(self, real: PubSubPublisher, crash_before: set[int], crash_after: set[int]):
        self.real, self.crash_before, self.crash_after = real, crash_before, crash_after
        self.calls = 0

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        self.calls += 1
        if self.calls in self.crash_before:
            raise TransientError("crash after the transaction, before the relay publish")
        message_id = self.real.publish(
            topic, data, attributes=attributes, ordering_key=ordering_key, timeout=timeout
        )
        if self.calls in self.crash_after:
            raise TransientError("crash after the publish, before marking sent")
        return message_id


class CrashingRepository(FirestoreRepository):
    """Fails inside the transaction function on chosen apply calls (nothing commits)."""

    def __init__(self, project: str, crash_on: set[int]) -> None:
        super().__init__(project)
        self.crash_on = crash_on
        self.calls = 0

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        self.calls += 1
        if self.calls not in self.crash_on or decide is None:
            return super().apply(op, decide, marker_ttl_days=marker_ttl_days)

        def crash(record: Any) -> Any:
            decide(record)
            raise TransientError("crash inside the transaction function")

        return super().apply(op, crash, marker_ttl_days=marker_ttl_days)


@pytest.mark.parametrize(
    "fault",
    ["before_relay_publish", "after_publish_before_mark", "inside_transaction"],
)
def test_faults_at_each_step_lose_and_double_nothing(project: tuple[str, Any], fault: str) -> None:
    name, settings = project
    scenario = build(
        "payment_failure_recovery", customer_id=f"cus_{fault}", account_id=f"acct_{fault}"
    )
    crash_steps = {1, 3, 4, 7}  # several crashes across the scenario, including back to back
    publisher = CrashingPublisher(
        PubSubPublisher(name),
        crash_before=crash_steps if fault == "before_relay_publish" else set(),
        crash_after=crash_steps if fault == "after_publish_before_mark" else set(),
    )
    repo = CrashingRepository(name, crash_steps if fault == "inside_transaction" else set())
    subscriber = make_subscriber(name, settings, repo=repo, publisher=publisher)

    failures = sum(deliver_until_acked(subscriber.handle, message(e)) for e in scenario.events)

    assert failures >= 3  # the faults really fired
    record = repo.get_record(scenario.customer_id)
    assert record is not None
    assert (record.status, record.access) == (scenario.expected.status, scenario.expected.access)
    history = repo.history(scenario.customer_id, limit=100)
    assert sorted(h.event_id for h in history) == sorted({e["id"] for e in scenario.events})
    published = entitlements(name)
    assert versions_after_dedupe(published)[scenario.customer_id] == list(
        range(1, record.version + 1)
    )
    assert repo.pending_outbox(scenario.customer_id) == []


def test_sweep_publishes_what_a_crashed_relay_left_behind(project: tuple[str, Any]) -> None:
    name, settings = project
    scenario = build("checkout_active", customer_id="cus_sweep", account_id="acct_sweep")
    publisher = CrashingPublisher(
        PubSubPublisher(name), crash_before={1, 2, 3, 4, 5, 6}, crash_after=set()
    )
    subscriber = make_subscriber(name, settings, publisher=publisher)
    for event in scenario.events:
        with pytest.raises(TransientError):
            subscriber.handle(message(event))  # committed, but the relay "crashed" each time
    repo = FirestoreRepository(name)
    record = repo.get_record("cus_sweep")
    assert record is not None and record.version >= 1
    assert entitlements(name, quiet_seconds=0.5) == []

    # No redelivery comes (say the messages were acked elsewhere); the sweep repairs it.
    healthy = make_subscriber(name, settings)
    result = healthy.relay.sweep(older_than_seconds=0)

    assert result.published == record.version
    assert versions_after_dedupe(entitlements(name))["cus_sweep"] == list(
        range(1, record.version + 1)
    )
    assert healthy.relay.sweep(older_than_seconds=0).published == 0


def test_next_event_of_the_customer_publishes_what_a_failed_relay_left_in_order(
    project: tuple[str, Any],
) -> None:
    # The relay of the first entitlement change fails and that message is not redelivered
    # (say it was acked elsewhere). The customer's next event must not trust "nothing is
    # pending": its transaction sees the newest entry unsent and the relay reads the outbox,
    # so version 1 goes out before version 2, each exactly once.
    name, settings = project
    scenario = build("upgrade", customer_id="cus_next", account_id="acct_next")
    publisher = CrashingPublisher(PubSubPublisher(name), crash_before={1}, crash_after=set())
    subscriber = make_subscriber(name, settings, publisher=publisher)
    failed = 0
    for event in scenario.events:
        try:
            subscriber.handle(message(event))
        except TransientError:
            failed += 1

    repo = FirestoreRepository(name)
    record = repo.get_record("cus_next")
    assert failed == 1 and record is not None and record.version >= 2
    received = [r.version for r in entitlements(name) if r.customer_id == "cus_next"]
    assert received == list(range(1, record.version + 1))
    assert repo.pending_outbox("cus_next") == []
