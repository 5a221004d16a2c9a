"""Every scenario end to end through the pure domain, plus the generator's own consistency."""

from __future__ import annotations

import pytest

from infra.local.scenarios import DAY, SCENARIOS, START, build, cancel_at_period_end, many
from schemas.documents import BillingRecord
from schemas.entitlements import AccessLevel
from schemas.stripe import Invoice, StripeEvent, Subscription
from statemachine import Policy, decide, entitlement_message, reconcile, reevaluate

POLICY = Policy()


def replay(events: list[StripeEvent], customer_id: str) -> tuple[BillingRecord, list[str]]:
    rec = BillingRecord(customer_id=customer_id)
    kinds: list[str] = []
    for event in events:
        before = rec.version
        decision = decide(rec, event, POLICY)
        rec = decision.record
        kinds.append(decision.kind)
        # The downstream contract: +1 exactly when something visible changed.
        assert rec.version == before + (1 if decision.entitlements_changed else 0)
        if decision.entitlements_changed:
            assert (
                entitlement_message(
                    rec, event.id, event.created, published_at=event.created, trace_id="t" * 32
                ).version
                == rec.version
            )
    return rec, kinds


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_in_order_reaches_its_expected_outcome(name: str) -> None:
    scenario = build(name)
    events = [StripeEvent.model_validate(e) for e in scenario.events]
    rec, kinds = replay(events, scenario.customer_id)
    assert "anomaly" not in kinds, rec.anomalies
    final = reevaluate(rec, scenario.end_time, POLICY).record
    want = scenario.expected
    assert final.status == want.status
    assert final.access is want.access
    assert final.entitlements is not None
    assert final.entitlements.plan == want.plan
    assert final.entitlements.add_ons == want.add_ons
    assert final.entitlements.limits.seats == want.seats
    assert final.account_id == scenario.account_id
    # Stripe's final object, read by reconcile, agrees with what the events produced.
    assert scenario.final_subscription is not None
    truth = Subscription.model_validate(scenario.final_subscription)
    assert truth.status == want.status
    assert reconcile(final, truth, scenario.end_time, POLICY).entitlements_changed is False


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generator_is_consistent(name: str) -> None:
    scenario = build(name, customer_id="cus_gen1", account_id="acct_gen1", start=START + 77)
    ids = [e["id"] for e in scenario.events]
    assert len(set(ids)) == len(ids)
    created = [e["created"] for e in scenario.events]
    assert created == sorted(created) and created[0] == START + 77
    assert len(created) > len(set(created))  # some events share a second, as Stripe's do
    for raw in scenario.events:
        event = StripeEvent.model_validate(raw)
        assert event.customer_id == "cus_gen1" and event.livemode is False
        if event.object_type == "invoice":
            assert Invoice.model_validate(raw["data"]["object"]).subscription_id
        if event.object_type == "subscription":
            assert Subscription.model_validate(raw["data"]["object"]).period_end


def test_both_api_shapes_are_generated() -> None:
    legacy = build("checkout_active").events
    current = build("upgrade").events
    assert any("subscription" in e["data"]["object"] for e in legacy if e["type"] == "invoice.paid")
    assert any("parent" in e["data"]["object"] for e in current if e["type"] == "invoice.paid")
    legacy_sub = next(e for e in legacy if e["type"] == "customer.subscription.created")
    assert legacy_sub["data"]["object"]["current_period_end"]
    assert "current_period_end" not in legacy_sub["data"]["object"]["items"]["data"][0]


def test_cancel_at_period_end_keeps_access_until_the_deletion() -> None:
    scenario = cancel_at_period_end("cus_cape", "acct_cape")
    events = [StripeEvent.model_validate(e) for e in scenario.events]
    scheduled, _ = replay(events[:-1], scenario.customer_id)
    assert scheduled.access is AccessLevel.FULL
    assert scheduled.message is not None and scheduled.message.code == "cancel_scheduled"
    assert scheduled.access_until == START + 30 * DAY


def test_many_makes_distinct_customers_of_every_scenario() -> None:
    batch = list(many(40))
    assert len({s.customer_id for s in batch}) == 40
    assert {s.name for s in batch} == set(SCENARIOS)
    ids = [e["id"] for s in batch for e in s.events]
    assert len(set(ids)) == len(ids)
