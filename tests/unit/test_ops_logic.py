"""Pure logic behind billing-ops: selectors, replay attributes, ack-after-publish, choices."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import click
import pytest

from functions.entrypoints.cli.main import cli
from functions.entrypoints.cli.output import parse_duration, parse_when
from functions.errors import TransientError
from functions.ports import DeadLetter
from functions.services.dead_letters import DeadLetterService, Selector, replay_attributes
from functions.services.reconcile import op_id_for
from functions.stripe_events import SOURCE_DELIVERY_COUNT
from schemas.documents import BillingRecord
from schemas.stripe import Subscription
from statemachine.catalog import CATALOG
from statemachine.subscriptions import governing
from tests.support.fake_audit import FakeAuditLog
from tests.support.fake_dead_letters import FakeDeadLetterQueue
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository

ENVELOPE = {
    "id": "evt_1",
    "object": "event",
    "type": "invoice.paid",
    "created": 1_700_000_000,
    "livemode": False,
    "data": {"object": {"object": "invoice", "id": "in_1", "customer": "cus_1"}},
}
AT = 1_700_000_100.0  # when the test's messages reached the dead-letter topic


def letter(
    message_id: str = "m1",
    attributes: Mapping[str, str] | None = None,
    body: dict[str, Any] | None = None,
    at: float = AT,
) -> DeadLetter:
    data = json.dumps(body if body is not None else ENVELOPE).encode()
    return DeadLetter(f"ack-{message_id}", message_id, data, dict(attributes or {}), at)


def test_dead_letter_reads_the_envelope_when_attributes_are_missing() -> None:
    msg = letter(attributes={SOURCE_DELIVERY_COUNT: "5"})
    assert (msg.event_id, msg.event_type, msg.customer_id) == ("evt_1", "invoice.paid", "cus_1")
    assert msg.reason_code == "max_attempts"
    assert msg.delivery_attempts == 5
    assert msg.created == 1_700_000_000
    assert msg.dead_lettered_at == 1_700_000_100.0


def test_dead_letter_of_an_unreadable_body_falls_back_to_the_failure_key() -> None:
    msg = DeadLetter(
        "a",
        "m9",
        b"\xff not json",
        {"failure_key": "msg-m0", "dead_letter_reason_code": "invalid_payload"},
        1.0,
    )
    assert msg.event_id == "msg-m0"
    assert msg.customer_id is None
    assert msg.reason_code == "invalid_payload"
    assert msg.envelope_summary()["parseable"] is False


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (Selector(), False),  # nothing selected never means everything
        (Selector(all=True), True),
        (Selector(event_ids=frozenset({"evt_1"})), True),
        (Selector(event_ids=frozenset({"m1"})), True),
        (Selector(event_ids=frozenset({"evt_2"})), False),
        (Selector(event_type="invoice.paid", customer_id="cus_1"), True),
        (Selector(event_type="invoice.paid", customer_id="cus_2"), False),
        (Selector(since=1_700_000_000.0), True),
        (Selector(since=1_700_000_200.0), False),
    ],
)
def test_selector(selector: Selector, matches: bool) -> None:
    assert selector.matches(letter()) is matches


def test_replay_attributes_drop_failure_stamps_and_mark_the_replay() -> None:
    msg = letter(
        attributes={
            "event_id": "evt_1",
            "customer_id": "cus_1",
            "trace_id": "t1",
            "dead_letter_reason": "x",
            "dead_letter_reason_code": "invalid_payload",
            "dead_lettered_at": "1",
            "dead_lettered_by": "subscriber",
            "failure_key": "evt_1",
            SOURCE_DELIVERY_COUNT: "5",
            "CloudPubSubDeadLetterSourceSubscription": "s",
        }
    )
    assert replay_attributes(msg, "alice", 42.9) == {
        "event_id": "evt_1",
        "customer_id": "cus_1",
        "trace_id": "t1",
        "replay": "true",
        "replay_of_message_id": "m1",
        "replayed_at": "42",
        "replayed_by": "alice",
    }


def queued(*letters: tuple[str, dict[str, Any]]) -> FakeDeadLetterQueue:
    """A dead-letter queue holding (message id, envelope) pairs, dead-lettered at once."""
    queue = FakeDeadLetterQueue()
    for message_id, body in letters:
        queue.put(json.dumps(body).encode(), message_id=message_id, published_at=AT)
    return queue


def service(
    queue: FakeDeadLetterQueue, publisher: FakePublisher, audit: FakeAuditLog
) -> DeadLetterService:
    return DeadLetterService(
        queue,
        publisher,
        audit,
        FakeRepository(),
        events_topic="stripe-events",
        clock=lambda: 100.0,
    )


def test_replay_acks_only_after_a_confirmed_publish_and_keeps_failures_queued() -> None:
    second = {**ENVELOPE, "id": "evt_2", "created": 1_600_000_000}
    bad = {**ENVELOPE, "id": "evt_3"}
    queue = queued(
        ("m1", ENVELOPE),
        ("m1b", ENVELOPE),  # the same event dead-lettered twice
        ("m2", second),
        ("m3", bad),
    )
    publisher, audit = FakePublisher(), FakeAuditLog()
    publisher.failing_data.add(json.dumps(bad).encode())

    report = service(queue, publisher, audit).replay(Selector(all=True), actor="alice")

    # Stripe's order (created), one publish per event, keyed by customer.
    sent = publisher.on("stripe-events")
    assert [json.loads(m.data)["id"] for m in sent] == ["evt_2", "evt_1"]
    assert {m.ordering_key for m in sent} == {"cus_1"}
    assert report.republished == {"evt_2": sent[0].message_id, "evt_1": sent[1].message_id}
    assert report.failed.keys() == {"evt_3"} and "TransientError" in report.failed["evt_3"]
    # Both copies of a replayed event are consumed; the failed one is handed back.
    assert queue.message_ids() == ["m3"] and queue.leased_ids() == []
    (record,) = audit.list()
    assert (record.action, record.actor, record.target) == ("dlq.replay", "alice", queue.path)
    assert record.details["republished"] == ["evt_1", "evt_2"]
    assert record.details["failed"].keys() == {"evt_3"}


def test_dry_run_and_non_matching_messages_are_released_untouched() -> None:
    queue = queued(("m1", ENVELOPE), ("m2", {**ENVELOPE, "id": "evt_2"}))
    publisher, audit = FakePublisher(), FakeAuditLog()
    svc = service(queue, publisher, audit)
    report = svc.replay(Selector(event_ids=frozenset({"evt_2"})), actor="a", dry_run=True)
    assert report.matched == ["evt_2"]
    assert publisher.messages == [] and audit.list() == []
    assert queue.message_ids() == ["m1", "m2"] and queue.leased_ids() == []


def test_purge_writes_the_audit_and_acknowledges() -> None:
    queue = queued(("m1", ENVELOPE), ("m2", {**ENVELOPE, "id": "evt_2"}))
    audit = FakeAuditLog()
    report = service(queue, FakePublisher(), audit).purge(
        Selector(event_ids=frozenset({"evt_1"})), actor="a", reason="test event"
    )
    assert report.purged == ["evt_1"] and report.messages == 1
    assert queue.message_ids() == ["m2"] and queue.leased_ids() == []
    (record,) = audit.list()
    assert (record.action, record.reason) == ("dlq.purge", "test event")
    assert record.details["event_ids"] == ["evt_1"]


def test_a_purge_whose_audit_cannot_be_written_acknowledges_nothing() -> None:
    # Audit first: a purge that happened must never be missing from the trail.
    queue = queued(("m1", ENVELOPE))
    audit = FakeAuditLog()
    audit.fail_writes_with = TransientError("firestore audit write failed: ServiceUnavailable")

    with pytest.raises(TransientError):
        service(queue, FakePublisher(), audit).purge(Selector(all=True), actor="a", reason="r")

    assert queue.message_ids() == ["m1"] and audit.list() == []


def test_a_purge_whose_audit_cannot_be_written_hands_its_leases_back() -> None:
    queue = queued(("m1", ENVELOPE))
    audit = FakeAuditLog()
    audit.fail_writes_with = TransientError("firestore audit write failed: ServiceUnavailable")

    with pytest.raises(TransientError):
        service(queue, FakePublisher(), audit).purge(Selector(all=True), actor="a", reason="r")

    assert queue.leased_ids() == []


def sub(sub_id: str, status: str, created: int) -> Subscription:
    return Subscription.model_validate(
        {"id": sub_id, "customer": "cus_1", "status": status, "created": created}
    )


def test_choose_subscription_prefers_the_newest_live_one() -> None:
    record = BillingRecord(customer_id="cus_1", subscription_id="sub_old")
    old = sub("sub_old", "canceled", 1)
    new = sub("sub_new", "active", 2)
    newer_dead = sub("sub_x", "incomplete_expired", 3)

    def choose_subscription(subs: list[Subscription], record: BillingRecord) -> Any:
        return governing(subs, record.subscription_id, CATALOG)

    assert choose_subscription([old, newer_dead, new], record) == new
    assert choose_subscription([newer_dead, old], record) == old  # the one we track
    assert choose_subscription([newer_dead], record) == newer_dead
    assert choose_subscription([], record) is None


def test_reconcile_op_id_is_stable_for_the_same_inputs_only() -> None:
    record = BillingRecord(customer_id="cus_1", version=3)
    active = sub("sub_1", "active", 1)
    assert op_id_for(record, active) == op_id_for(record.model_copy(), active)
    assert op_id_for(record, active) != op_id_for(record, sub("sub_1", "past_due", 1))
    assert op_id_for(record, active) != op_id_for(record.model_copy(update={"version": 4}), active)
    assert op_id_for(record, None).startswith("ops_reconcile_cus_1_")


def test_durations_and_times() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("3d") == 3 * 86_400
    assert parse_when("2h", now=10_000.0) == 10_000.0 - 7_200
    assert parse_when("2026-01-01T00:00:00Z") == 1_767_225_600
    for bad in ("3", "d", "3w", "yesterday"):
        with pytest.raises(click.BadParameter):
            parse_when(bad) if bad == "yesterday" else parse_duration(bad)


def _leaves(group: click.Group, prefix: str = "") -> Iterable[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from _leaves(command, f"{path} ")
        else:
            yield path, command


READ_ONLY = {"dlq list", "dlq show", "account show", "account history"}
DESTRUCTIVE = {"dlq replay", "dlq purge", "account override set", "account override clear"}


def test_cli_contract_json_everywhere_dry_run_on_writes_yes_on_destructive() -> None:
    leaves = dict(_leaves(cli))
    assert leaves.keys() >= READ_ONLY | DESTRUCTIVE
    for path, command in leaves.items():
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert "--json" in options, path
        if path not in READ_ONLY:
            assert "--dry-run" in options, path
        if path in DESTRUCTIVE:
            assert "--yes" in options, path
