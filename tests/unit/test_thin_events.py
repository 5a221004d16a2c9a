"""Thin event notifications on fakes: which types we act on, the evidence a read becomes,
per-object coalescing of reads, and one change arriving as both kinds having one effect.
The same runs over HTTP on the emulators in tests/integration/test_thin_events_e2e.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import flask
import pytest
from stripe.events._event_classes import get_v2_event_notification_class
from stripe.v2.core._event import UnknownEventNotification

from functions import stripe_events
from functions.config import WebhookSettings
from functions.entrypoints.webhook import WebhookHandler
from functions.errors import InvalidPayload, StripeUnavailable, TransientError
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from functions.services.thin_events import (
    HANDLED_THIN_TYPES,
    ReadCache,
    ThinEvents,
    expected_object_type,
    is_handled_thin_type,
)
from schemas.thin_events import ThinEventNotification
from statemachine import HANDLED_EVENT_TYPES
from statemachine.decision import Policy
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository
from tests.support.fake_stripe_gateway import FakeStripeGateway
from tests.support.signing import sign

T0 = 1_790_000_000.0
CUSTOMER = "cus_thin1"
SUB = "sub_thin1"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(at: float) -> str:
    whole = int(at)
    millis = round((at - whole) * 1000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def notification(
    type_: str = "v1.customer.subscription.updated",
    created: float = T0,
    related: tuple[str, str] | None = ("subscription", SUB),
    event_id: str = "evt_thin_1",
) -> dict[str, Any]:
    note: dict[str, Any] = {
        "id": event_id,
        "object": "v2.core.event",
        "type": type_,
        "created": iso(created),
        "livemode": False,
    }
    if related:
        kind, obj_id = related
        note["related_object"] = {"id": obj_id, "type": kind, "url": f"/v1/x/{obj_id}"}
    return note


def subscription(status: str = "active", quantity: int = 1) -> dict[str, Any]:
    return {
        "id": SUB,
        "object": "subscription",
        "customer": CUSTOMER,
        "status": status,
        "created": int(T0) - 86_400,
        "cancel_at_period_end": False,
        "metadata": {"account_id": "acct_thin1"},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "quantity": quantity,
                    "price": {"id": "price_team", "lookup_key": "dataface_team_monthly"},
                    "current_period_start": int(T0) - 86_400,
                    "current_period_end": int(T0) + 29 * 86_400,
                }
            ],
        },
    }


def snapshot(
    status: str = "active", created: int = int(T0), event_id: str = "evt_snap_1"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.updated",
        "created": created,
        "livemode": False,
        "data": {"object": subscription(status)},
    }


def parsed(note: dict[str, Any]) -> ThinEventNotification:
    result = stripe_events.parse_message(json.dumps(note).encode())
    assert isinstance(result, ThinEventNotification)
    return result


# -- which types ---------------------------------------------------------------------------


def test_handled_thin_types_derive_from_the_domain_and_name_real_sdk_classes() -> None:
    for classic in HANDLED_EVENT_TYPES - {"invoice.upcoming"}:
        assert is_handled_thin_type(f"v1.{classic}"), classic
    assert not is_handled_thin_type("v1.invoice.upcoming")  # a preview names no object
    assert not is_handled_thin_type("v1.invoice.overdue")  # no fact the domain keeps
    assert not is_handled_thin_type("customer.subscription.updated")  # not a thin type
    assert is_handled_thin_type("v1.customer.subscription.past_due")
    assert is_handled_thin_type("v1.customer.subscription.item_price_changed")
    for thin_type in HANDLED_THIN_TYPES:
        # Every type we act on is one the SDK has an EventNotification class for.
        cls = get_v2_event_notification_class(thin_type)
        assert cls is not UnknownEventNotification, thin_type
        assert expected_object_type(thin_type) in {"subscription", "invoice", "checkout.session"}


def test_the_webhook_envelope_of_a_thin_notification_keys_by_the_related_object() -> None:
    envelope = stripe_events.parse_envelope(json.dumps(notification()).encode())
    assert envelope.thin and envelope.customer_id is None
    assert envelope.ordering_key == SUB
    assert envelope.created == int(T0)
    attrs = envelope.attributes("t" * 32, "tp")
    assert attrs["event_type"] == "v1.customer.subscription.updated"
    assert attrs["object_id"] == SUB and "customer_id" not in attrs


def test_a_thin_notification_with_an_epoch_created_is_an_invalid_envelope() -> None:
    note = notification()
    note["created"] = int(T0)  # the snapshot shape: the v2 payload carries RFC 3339
    with pytest.raises(stripe_events.InvalidEnvelope) as caught:
        stripe_events.parse_message(json.dumps(note).encode())
    assert caught.value.field == "created"


# -- evidence and coalescing ---------------------------------------------------------------


def thin_events(gateway: FakeStripeGateway, clock: Clock, **cache: float) -> ThinEvents:
    return ThinEvents(lambda: gateway, cache=ReadCache(clock=clock, **cache), clock=clock)


def test_a_subscription_read_is_applied_as_a_snapshot_dated_by_the_notification() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 2.5)
    gateway.subscriptions[SUB] = subscription("past_due")
    found = thin_events(gateway, clock).evidence(
        parsed(notification("v1.customer.subscription.past_due"))
    )
    assert found is not None
    event, shared = found
    assert (event.id, event.type, event.created) == (
        "evt_thin_1",
        "customer.subscription.updated",
        int(T0),  # not the read's time: grace clocks start when Stripe saw the change
    )
    assert event.data.object["status"] == "past_due" and not shared


def test_an_invoice_notification_keeps_its_own_time_and_a_paid_invoice_wins() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 9)
    gateway.invoices["in_1"] = {
        "id": "in_1",
        "object": "invoice",
        "customer": CUSTOMER,
        "status": "paid",
        "created": int(T0) - 60,
    }
    gateway.thin_events["evt_thin_1"] = {"id": "evt_thin_1", "snapshot_event": None}
    note = notification("v1.invoice.payment_failed", related=("invoice", "in_1"))
    found = thin_events(gateway, clock).evidence(parsed(note))
    assert found is not None
    event, _ = found
    # Paid since the failure was notified: the newest evidence is that it is paid.
    assert (event.type, event.created) == ("invoice.paid", int(T0))


def test_a_burst_for_one_object_costs_one_read() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    thin = thin_events(gateway, clock)
    shared = []
    for i in range(20):
        note = notification(created=T0 + i * 0.02, event_id=f"evt_thin_b{i}")
        found = thin.evidence(parsed(note))
        assert found is not None
        shared.append(found[1])
        clock.now += 0.01
    assert thin.reads == 1
    assert [c for c in gateway.calls if c[0] == "retrieve subscription"] == [
        ("retrieve subscription", None)
    ]
    assert shared == [False] + [True] * 19


def test_a_notification_created_after_the_read_started_reads_again() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    thin = thin_events(gateway, clock)
    thin.evidence(parsed(notification(created=T0)))
    gateway.subscriptions[SUB] = subscription(quantity=3)
    # Created 0.9 s after the first read started: that read may predate its change.
    found = thin.evidence(parsed(notification(created=T0 + 1.9, event_id="evt_thin_2")))
    assert found is not None and not found[1]
    assert thin.reads == 2
    assert found[0].data.object["items"]["data"][0]["quantity"] == 3


def test_a_read_within_the_clock_skew_of_the_notification_is_not_trusted() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    thin = thin_events(gateway, clock, skew_seconds=0.25)
    thin.evidence(parsed(notification(created=T0)))
    thin.evidence(parsed(notification(created=T0 + 0.8, event_id="evt_thin_2")))
    assert thin.reads == 2


def test_an_old_read_is_not_reused() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    thin = thin_events(gateway, clock, max_age_seconds=5.0)
    thin.evidence(parsed(notification(created=T0)))
    clock.now += 6  # a notification delivered late, e.g. redelivered after a failure
    thin.evidence(parsed(notification(created=T0 + 0.1, event_id="evt_thin_2")))
    assert thin.reads == 2


def test_reads_of_different_objects_are_not_shared() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    other = {**subscription(), "id": "sub_thin2"}
    gateway.subscriptions["sub_thin2"] = other
    thin = thin_events(gateway, clock)
    thin.evidence(parsed(notification(created=T0)))
    thin.evidence(parsed(notification(created=T0, related=("subscription", "sub_thin2"))))
    assert thin.reads == 2


def test_stripe_unavailable_is_transient_and_caches_nothing() -> None:
    gateway, clock = FakeStripeGateway(), Clock(T0 + 1)
    gateway.subscriptions[SUB] = subscription()
    gateway.fail_next(1, status=503)
    thin = thin_events(gateway, clock)
    with pytest.raises(StripeUnavailable) as caught:
        thin.evidence(parsed(notification()))
    assert isinstance(caught.value, TransientError)
    assert thin.evidence(parsed(notification())) is not None
    assert thin.reads == 1


def test_a_related_object_of_the_wrong_type_is_invalid() -> None:
    thin = thin_events(FakeStripeGateway(), Clock())
    with pytest.raises(InvalidPayload):
        thin.evidence(parsed(notification(related=("invoice", "in_1"))))
    with pytest.raises(InvalidPayload):
        thin.evidence(parsed(notification(related=None)))


def test_an_unhandled_thin_type_makes_no_read() -> None:
    gateway = FakeStripeGateway()
    thin = thin_events(gateway, Clock())
    assert (
        thin.evidence(parsed(notification("v1.invoice.overdue", related=("invoice", "in_1"))))
        is None
    )
    assert gateway.calls == []


# -- through the subscriber: one change, one effect ----------------------------------------


def make(
    repo: FakeRepository, pub: FakePublisher, thin: ThinEvents | None, clock: Clock
) -> Subscriber:
    return Subscriber(
        Applier(repo, OutboxRelay(repo, pub, "ents"), marker_ttl_days=35),
        pub,
        project="p",
        dead_letter_topic="dlq",
        policy=Policy(),
        clock=clock,
        thin=thin,
    )


def deliver(subscriber: Subscriber, body: dict[str, Any]) -> str:
    return subscriber.handle(
        IncomingMessage(data=json.dumps(body).encode(), message_id="m")
    ).decision


def effect(repo: FakeRepository, pub: FakePublisher) -> tuple[Any, ...]:
    record = repo.get_record(CUSTOMER)
    assert record is not None
    versions = [m.attributes["version"] for m in pub.messages if m.topic == "ents"]
    return (record.status, record.access, record.entitlements, record.version, versions)


@pytest.mark.parametrize("order", ["snapshot_only", "thin_only", "snapshot_first", "thin_first"])
def test_a_change_arriving_as_snapshot_and_thin_has_one_effect(order: str) -> None:
    clock = Clock(T0 + 1.5)
    gateway = FakeStripeGateway()
    gateway.subscriptions[SUB] = subscription("active")
    repo, pub = FakeRepository(), FakePublisher()
    sub = make(repo, pub, thin_events(gateway, clock), clock)
    kinds = {"snapshot_only": ["s"], "thin_only": ["t"]}.get(order) or (
        ["s", "t"] if order == "snapshot_first" else ["t", "s"]
    )
    decisions = [deliver(sub, snapshot() if k == "s" else notification()) for k in kinds]
    assert decisions[0] == "applied"
    assert all(d in ("noop", "stale") for d in decisions[1:]), decisions
    alone_repo, alone_pub = FakeRepository(), FakePublisher()
    deliver(make(alone_repo, alone_pub, None, clock), snapshot())
    assert effect(repo, pub) == effect(alone_repo, alone_pub)


def test_a_handled_thin_notification_without_stripe_access_is_redelivered() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    with pytest.raises(TransientError):
        deliver(make(repo, pub, None, Clock()), notification())
    assert not repo.is_processed("evt_thin_1")


def test_an_unhandled_thin_notification_is_ignored_with_a_marker() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    note = notification(
        "v1.billing.meter.error_report_triggered", related=("billing.meter", "mtr_1")
    )
    assert deliver(make(repo, pub, None, Clock()), note) == "ignored"
    assert repo.is_processed("evt_thin_1") and pub.messages == []


# -- the webhook and failure records -------------------------------------------------------

WEBHOOK_SECRET = "whsec_thin" + "c" * 24


def webhook_call(body: bytes, signature: str) -> tuple[int, FakePublisher]:
    publisher = FakePublisher()
    handler = WebhookHandler(
        WebhookSettings(google_cloud_project="unit", stripe_webhook_secret=WEBHOOK_SECRET),
        publisher,
    )
    app = flask.Flask(__name__)
    headers = {"Stripe-Signature": signature}
    with app.test_request_context("/", method="POST", data=body, headers=headers):
        status = handler(flask.request).status_code
    return status, publisher


def test_the_webhook_publishes_a_signed_thin_notification_unchanged_keyed_by_its_object() -> None:
    body = json.dumps(notification(created=time.time())).encode()
    status, publisher = webhook_call(body, sign(body, [WEBHOOK_SECRET], int(time.time())))
    assert status == 200
    [published] = publisher.messages
    assert published.data == body and published.ordering_key == SUB
    assert published.attributes["event_id"] == "evt_thin_1"
    assert published.attributes["object_id"] == SUB


def test_the_webhook_refuses_a_thin_notification_signed_with_another_secret() -> None:
    body = json.dumps(notification(created=time.time())).encode()
    status, publisher = webhook_call(body, sign(body, ["whsec_other" + "d" * 24], int(time.time())))
    assert status == 400 and publisher.messages == []


def test_a_failed_read_is_recorded_under_the_notification_id() -> None:
    clock = Clock(T0 + 1)
    gateway = FakeStripeGateway()
    gateway.fail_next(1, status=503)
    repo, pub = FakeRepository(), FakePublisher()
    with pytest.raises(TransientError):
        deliver(make(repo, pub, thin_events(gateway, clock), clock), notification())
    failure = repo.get_failure("evt_thin_1")
    assert failure is not None and failure.reason_code == "transient"
    assert failure.event_type == "v1.customer.subscription.updated"


def test_a_missing_related_object_is_dead_lettered_under_the_notification_id() -> None:
    clock = Clock(T0 + 1)
    repo, pub = FakeRepository(), FakePublisher()
    outcome = deliver(
        make(repo, pub, thin_events(FakeStripeGateway(), clock), clock), notification()
    )
    assert outcome == "dead_lettered"
    failure = repo.get_failure("evt_thin_1")
    assert failure is not None and failure.reason_code == "stripe_rejected"
    [dead] = pub.messages
    assert dead.topic == "dlq"


def test_an_invoice_change_arriving_as_both_kinds_across_a_second_has_one_effect() -> None:
    # Stripe's two events of one payment failure may straddle a second; the grace clock
    # must start once, so the thin one is applied under its twin's id.
    clock = Clock(T0 + 1.2)
    gateway = FakeStripeGateway()
    gateway.subscriptions[SUB] = subscription("past_due")
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "customer": CUSTOMER,
        "status": "open",
        "created": int(T0) - 60,
        "attempt_count": 1,
        "parent": {"subscription_details": {"subscription": SUB}},
    }
    gateway.invoices["in_1"] = invoice
    gateway.thin_events["evt_thin_inv"] = {"id": "evt_thin_inv", "snapshot_event": "evt_snap_inv"}
    snap = {
        "id": "evt_snap_inv",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": int(T0) - 1,
        "livemode": False,
        "data": {"object": invoice},
    }
    note = notification(
        "v1.invoice.payment_failed",
        created=T0 + 0.1,
        related=("invoice", "in_1"),
        event_id="evt_thin_inv",
    )
    results = {}
    orders = {
        "thin_first": [note, snap],
        "thin_only": [note],
        "snapshot_first": [snap, note],
        "snapshot_only": [snap],
    }
    for order, bodies in orders.items():
        repo, pub = FakeRepository(), FakePublisher()
        sub = make(repo, pub, thin_events(gateway, clock), clock)
        assert deliver(sub, snapshot("past_due", created=int(T0) - 30)) == "applied"
        decisions = [deliver(sub, body) for body in bodies]
        assert decisions[0] == "applied" and decisions[1:] in ([], ["duplicate"]), order
        record = repo.get_record(CUSTOMER)
        assert record is not None and record.payment_failed_at is not None
        results[order] = (*effect(repo, pub), record.payment_failed_at, record.grace_until)
    # Both together are whichever came first alone: one effect, one grace clock.
    assert results["thin_first"] == results["thin_only"]
    assert results["snapshot_first"] == results["snapshot_only"]
    # And every delivery publishes the same versions (the straddled second is invisible
    # to the versions; the grace clock starts at the first evidence of the failure).
    assert {r[4] == results["snapshot_only"][4] for r in results.values()} == {True}


def test_the_gateway_is_built_once_and_only_when_a_thin_notification_needs_a_read() -> None:
    gateway, clock, built = FakeStripeGateway(), Clock(T0 + 1), []
    gateway.subscriptions[SUB] = subscription()

    def factory() -> FakeStripeGateway:
        built.append(1)
        return gateway

    thin = ThinEvents(factory, cache=ReadCache(clock=clock, max_age_seconds=0), clock=clock)
    repo, pub = FakeRepository(), FakePublisher()
    sub = make(repo, pub, thin, clock)
    assert deliver(sub, snapshot()) == "applied"
    assert built == []  # a snapshot-only deployment never needs Stripe credentials
    deliver(sub, notification(event_id="evt_thin_a"))
    clock.now += 1
    deliver(sub, notification(created=T0 + 1.5, event_id="evt_thin_b"))
    assert built == [1] and thin.reads == 2
