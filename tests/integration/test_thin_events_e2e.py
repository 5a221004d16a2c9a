"""Thin event notifications end to end, as deployed, on the emulators: a signed
`v2.core.event` POSTed to the real webhook -> Pub/Sub -> the real functions-framework
subscriber, which reads the related object from the local Stripe wire-format server over
HTTP (STRIPE_API_BASE) -> Firestore -> entitlement-changed.

For every thin type the domain handles, three customers get the same baseline and then the
same change: one by the snapshot event, one by the thin notification, one by both (posted
back to back; their ordering keys differ, so either may be processed first). All three end
with the same record and the same entitlement versions on the stream. Invoice
notifications name their v1 twin through the v2 event (`snapshot_event`), which the
subscriber reads from the local server too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import stripe
from stripe.events import V1CustomerSubscriptionUpdatedEventNotification

from functions.adapters.firestore_repository import FirestoreRepository
from functions.services.thin_events import HANDLED_THIN_TYPES, expected_object_type
from infra.local import demo
from infra.local.emulators import Emulators
from infra.local.stack import LocalStack
from statemachine.domain import SUBSCRIPTION_EVENTS
from tests.integration.subscriber_support import entitlements, versions_after_dedupe
from tests.support.signing import sign
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator
SECRET = "whsec_e2e_thin_events_secret"
TEAM = {"id": "price_thin_team", "lookup_key": "dataface_team_monthly"}
BUSINESS = {"id": "price_thin_business", "lookup_key": "dataface_business_monthly"}
PRICES = {"team": TEAM, "business": BUSINESS}


@pytest.fixture(scope="module")
def server() -> Iterator[StripeServer]:
    running = StripeServer().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(emulators: Emulators, server: StripeServer) -> Iterator[LocalStack]:
    env = {
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_local",
        "STRIPE_API_BASE": server.url,
    }
    with LocalStack(env=env, emulators=emulators) as running:
        yield running


@dataclass(frozen=True)
class Change:
    """A baseline subscription (None: no baseline) and what the change makes of it."""

    baseline: str | None
    status: str
    price: str = "team"
    quantity: int = 1
    cancel_at: bool = False


# What Stripe would have changed for each subscription type it notifies.
SUBSCRIPTION_CHANGES = {
    "created": Change(None, "active"),
    "updated": Change("active", "active", quantity=3),
    "deleted": Change("active", "canceled"),
    "paused": Change("active", "paused"),
    "resumed": Change("paused", "active"),
    "trial_will_end": Change("trialing", "trialing"),
    "pending_update_applied": Change("active", "active", price="business"),
    "pending_update_expired": Change("past_due", "active"),
    "active": Change("past_due", "active"),
    "past_due": Change("active", "past_due"),
    "trialing": Change(None, "trialing"),
    "unpaid": Change("past_due", "unpaid"),
    "incomplete": Change(None, "incomplete"),
    "incomplete_expired": Change("incomplete", "incomplete_expired"),
    "item_added": Change("active", "active", quantity=2),
    "item_removed": Change("active", "active", price="business"),
    "item_price_changed": Change("active", "active", price="business"),
    "item_quantity_changed": Change("active", "active", quantity=5),
    "cancel_at_changed": Change("active", "active", cancel_at=True),
}
INVOICE_STATUS = {"paid": "paid", "payment_failed": "open", "payment_action_required": "open"}


def subscription(sub_id: str, customer: str, change: Change, *, changed: bool) -> dict[str, Any]:
    """The subscription before (`changed` False: the baseline) or after the change."""
    now = int(time.time())
    status = change.status if changed else change.baseline or change.status
    price = PRICES[change.price] if changed else TEAM
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "created": now - 86_400,
        "cancel_at_period_end": False,
        "cancel_at": now + 20 * 86_400 if change.cancel_at and changed else None,
        "metadata": {},
        "items": {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "object": "subscription_item",
                    "quantity": change.quantity if changed else 1,
                    "price": {"object": "price", **price},
                    "current_period_start": now - 86_400,
                    "current_period_end": now + 29 * 86_400,
                }
            ],
        },
    }


def snapshot(event_id: str, type_: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": created,
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
    }


def post(stack: LocalStack, body: dict[str, Any]) -> None:
    assert demo.post(stack.webhook_url, SECRET, body) == 200, body["id"]


@dataclass
class Case:
    thin_type: str
    customer: str
    mode: str  # snapshot | thin | both
    events: list[str]


def prepare(server: StripeServer, thin_type: str, mode: str, n: int) -> tuple[str, Any]:
    """The baseline event (posted first) and a closure that makes the change."""
    name = thin_type.removeprefix("v1.")
    customer, sub_id = f"cus_thin_{n}_{mode}", f"sub_thin_{n}_{mode}"
    kind = expected_object_type(thin_type)
    base_time = int(time.time()) - 30
    if kind == "subscription":
        change = SUBSCRIPTION_CHANGES[name.removeprefix("customer.subscription.")]
        baseline = change.baseline
    else:
        change, baseline = Change("active", "active"), "active"
    base = None
    if baseline:
        base_obj = subscription(sub_id, customer, change, changed=False)
        if kind != "checkout.session":
            base_obj["metadata"] = {"account_id": f"acct_thin_{n}_{mode}"}
        server.state.subscriptions[sub_id] = base_obj
        base = snapshot(
            f"evt_base_{n}_{mode}", "customer.subscription.created", base_obj, base_time
        )
    return customer, (base, sub_id, change, kind, name)


def change_events(
    server: StripeServer, customer: str, n: int, mode: str, detail: Any
) -> list[dict[str, Any]]:
    _, sub_id, change, kind, name = detail
    if kind == "subscription":
        obj = subscription(sub_id, customer, change, changed=True)
        server.state.subscriptions[sub_id] = obj
        related = sub_id
        classic = name if name in SUBSCRIPTION_EVENTS else "customer.subscription.updated"
    elif kind == "invoice":
        obj = {
            "id": f"in_thin_{n}_{mode}",
            "object": "invoice",
            "customer": customer,
            "status": INVOICE_STATUS[name.removeprefix("invoice.")],
            "billing_reason": "subscription_cycle",
            "created": int(time.time()),
            "attempt_count": 1,
            "parent": {"subscription_details": {"subscription": sub_id}},
        }
        server.state.invoices[obj["id"]] = obj
        related, classic = obj["id"], name
    else:
        obj = {
            "id": f"cs_thin_{n}_{mode}",
            "object": "checkout.session",
            "customer": customer,
            "client_reference_id": f"acct_thin_{n}_{mode}",
            "mode": "subscription",
            "subscription": sub_id,
            "metadata": {},
        }
        server.state.checkout_sessions[obj["id"]] = obj
        related, classic = obj["id"], name
    # Stripe names the v1 twin of a v2 event whether or not an endpoint receives it.
    thin = server.emit_thin(f"v1.{name}", kind, related, snapshot_event=f"evt_snap_{n}_{mode}")
    # Stripe creates both events of one change at once: the snapshot has the thin one's second.
    created = int(datetime.fromisoformat(thin["created"].replace("Z", "+00:00")).timestamp())
    snap = snapshot(f"evt_snap_{n}_{mode}", classic, obj, created)
    return {"snapshot": [snap], "thin": [thin], "both": [snap, thin]}[mode]


def effect(repo: FirestoreRepository, customer: str) -> tuple[Any, ...]:
    record = repo.get_record(customer)
    assert record is not None, customer
    return (
        record.status,
        record.access,
        record.entitlements,
        tuple((i.lookup_key, i.quantity) for i in record.items),
        record.cancel_at is not None,
        record.version,
        record.account_id is not None,  # each customer links its own account
        record.grace_until,
        record.access_until,
        record.payment_failed_at is not None,
        record.payment_action_required,
        tuple(a.code for a in record.anomalies),
    )


THIN_TYPES = sorted(HANDLED_THIN_TYPES)


def test_every_handled_thin_type_has_the_effect_of_its_snapshot_and_both_have_one(
    stack: LocalStack, server: StripeServer
) -> None:
    repo = FirestoreRepository(stack.project)
    modes = ("snapshot", "thin", "both")
    prepared = {
        (n, mode): prepare(server, thin_type, mode, n)
        for n, thin_type in enumerate(THIN_TYPES)
        for mode in modes
    }
    bases = [d[1][0] for d in prepared.values() if d[1][0] is not None]
    for base in bases:
        post(stack, base)
    demo.wait_processed(repo, {b["id"] for b in bases})
    sent: dict[tuple[int, str], list[str]] = {}
    for (n, mode), (customer, detail) in prepared.items():
        events = change_events(server, customer, n, mode, detail)
        for body in events:
            post(stack, body)
        # An invoice notification is applied (and marked processed) under its v1 twin's id.
        twin = expected_object_type(THIN_TYPES[n]) == "invoice"
        sent[(n, mode)] = [
            f"evt_snap_{n}_{mode}" if twin and e["object"] == "v2.core.event" else e["id"]
            for e in events
        ]
    demo.wait_processed(repo, {e for ids in sent.values() for e in ids})

    versions = versions_after_dedupe(entitlements(stack.project, quiet_seconds=2.0))
    for n, thin_type in enumerate(THIN_TYPES):
        customers = {mode: prepared[(n, mode)][0] for mode in modes}
        effects = {mode: effect(repo, c) for mode, c in customers.items()}
        assert effects["thin"] == effects["snapshot"], (thin_type, effects)
        assert effects["both"] == effects["snapshot"], (thin_type, effects)
        streams = {mode: versions.get(c, []) for mode, c in customers.items()}
        assert streams["thin"] == streams["snapshot"] == streams["both"], (thin_type, streams)
        # Not three untouched records compared: the change took effect, without anomaly.
        assert effects["snapshot"][0] == expected_status(thin_type), (thin_type, effects)
        assert effects["snapshot"][-1] == (), (thin_type, effects)


def expected_status(thin_type: str) -> str:
    name = thin_type.removeprefix("v1.customer.subscription.")
    change = SUBSCRIPTION_CHANGES.get(name)
    return change.status if change else "active"


def test_a_burst_of_notifications_for_one_subscription_costs_few_reads(
    stack: LocalStack, server: StripeServer
) -> None:
    repo = FirestoreRepository(stack.project)
    change = Change("active", "active", quantity=4)
    customer, sub_id = "cus_thin_burst", "sub_thin_burst"
    base = subscription(sub_id, customer, change, changed=False)
    post(
        stack,
        snapshot("evt_base_burst", "customer.subscription.created", base, int(time.time()) - 30),
    )
    demo.wait_processed(repo, {"evt_base_burst"})
    server.state.subscriptions[sub_id] = subscription(sub_id, customer, change, changed=True)
    server.clear_requests()
    notes = [
        server.emit_thin("v1.customer.subscription.updated", "subscription", sub_id)
        for _ in range(30)
    ]
    # Stripe's own delivery latency: the burst arrives after the reads' clock-skew allowance
    # (ReadCache.skew_seconds), so one read started after every notification was created.
    time.sleep(0.5)
    for note in notes:
        post(stack, note)
    demo.wait_processed(repo, {n["id"] for n in notes})
    reads = server.requests_to("GET", f"/v1/subscriptions/{sub_id}")
    assert len(reads) == 1, len(reads)
    record = repo.get_record(customer)
    # The base plan's quantity is stored (it is what Stripe bills), though no entitlement
    # depends on it, so no new version is published.
    assert record is not None and [i.quantity for i in record.items] == [4]


def test_the_local_server_speaks_the_sdk_thin_event_format(server: StripeServer) -> None:
    customer, sub_id = "cus_thin_sdk", "sub_thin_sdk"
    server.state.subscriptions[sub_id] = subscription(
        sub_id, customer, Change(None, "active"), changed=True
    )
    note = server.emit_thin("v1.customer.subscription.updated", "subscription", sub_id)
    body = json.dumps(note)
    client = stripe.StripeClient("sk_test_local", base_addresses={"api": server.url})
    parsed = client.parse_event_notification(
        body, sign(body.encode(), [SECRET], int(time.time())), SECRET
    )
    assert isinstance(parsed, V1CustomerSubscriptionUpdatedEventNotification)
    assert parsed.related_object.id == sub_id
    assert parsed.fetch_related_object().id == sub_id
    assert parsed.fetch_event().id == note["id"]
