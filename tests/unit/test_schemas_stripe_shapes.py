"""Our Stripe models read Stripe's own object shapes (../shared/stripe-fixtures) and the
older API shape, and the domain reads them the same way."""

from __future__ import annotations

import copy
from typing import Any

from infra.local.scenarios import START, STARTER
from infra.local.stripe_fixtures import resources
from schemas.documents import BillingRecord
from schemas.stripe import CheckoutSession, Invoice, StripeEvent, Subscription
from statemachine import Policy, decide


def fixture_subscription(lookup_key: str | None = STARTER) -> dict[str, Any]:
    sub = copy.deepcopy(resources()["subscription"])
    sub["items"]["data"][0]["price"]["lookup_key"] = lookup_key
    # The placeholder cancel_at (2009) would mean "already ended" for a 2026 event.
    sub["cancel_at"] = None
    sub["cancel_at_period_end"] = False
    return sub


def test_current_shape_subscription_reads_the_period_from_items() -> None:
    sub = Subscription.model_validate(fixture_subscription())
    assert sub.current_period_end is None  # not on the subscription in this API version
    assert sub.period_end == resources()["subscription"]["items"]["data"][0]["current_period_end"]
    assert sub.items.data[0].price.lookup_key == STARTER


def test_older_shape_subscription_reads_the_period_from_the_subscription() -> None:
    raw = fixture_subscription()
    for item in raw["items"]["data"]:
        item.pop("current_period_start", None)
        item.pop("current_period_end", None)
    raw["current_period_end"] = START + 99
    assert Subscription.model_validate(raw).period_end == START + 99


def test_invoice_subscription_in_both_shapes() -> None:
    raw = copy.deepcopy(resources()["invoice"])
    assert Invoice.model_validate(raw).subscription_id == "subscription"
    raw["parent"] = None
    raw["subscription"] = {"id": "sub_old", "object": "subscription"}
    assert Invoice.model_validate(raw).subscription_id == "sub_old"


def test_checkout_session_fixture_parses() -> None:
    session = CheckoutSession.model_validate(resources()["checkout.session"])
    assert session.id.startswith("cs_")


def test_the_domain_applies_a_fixture_shaped_event() -> None:
    raw = fixture_subscription()
    event = StripeEvent.model_validate(
        {
            "id": "evt_fixture1",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": START,
            "livemode": False,
            "data": {"object": raw},
        }
    )
    decision = decide(BillingRecord(customer_id=raw["customer"]), event, Policy())
    assert decision.kind == "applied"
    assert decision.record.status == raw["status"]
    assert decision.record.entitlements is not None
    assert decision.record.entitlements.plan == "starter"
    # The same object with the fixture's own (null) lookup key is an unknown price.
    unknown = event.model_copy(
        update={"data": event.data.model_copy(update={"object": fixture_subscription(None)})}
    )
    refused = decide(BillingRecord(customer_id=raw["customer"]), unknown, Policy())
    assert refused.kind == "anomaly" and refused.record.entitlements is None
