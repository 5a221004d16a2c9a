"""End to end: what checkout and plan changes make Stripe emit gives the right entitlements.

The functions run through functions-framework against the local Stripe server; the server
turns what they asked for into the events Stripe would send (subscription created on
checkout completion, updated on an immediate change, updated again when a scheduled
downgrade's phase ends). Those events go through the domain (`statemachine.decide`) and the
Firestore repository on the emulator, exactly as the subscriber applies them.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import statemachine
from functions.adapters.firestore_repository import FirestoreRepository
from functions.ports import Operation
from infra.local import scenarios
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent
from statemachine.catalog import CATALOG
from statemachine.decision import Policy
from statemachine.plan_change import PlanTarget, SubscriptionState, classify, state_of
from tests.integration.conftest import Caller
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator


class Pipeline:
    """Applies the server's new events in order, like the subscriber does."""

    def __init__(self, server: StripeServer | None, project: str) -> None:
        self._decide = statemachine.decide
        self._server = server
        self._seen = 0
        self._policy = Policy()
        self.repo = FirestoreRepository(project)

    def drain(self) -> list[str]:
        assert self._server is not None
        types = self.apply(self._server.emitted[self._seen :])
        self._seen = len(self._server.emitted)
        return types

    def apply(self, events: Any) -> list[str]:
        types = []
        for raw in events:
            event = StripeEvent.model_validate(raw)
            types.append(event.type)
            if not statemachine.is_handled_event_type(event.type) or not event.customer_id:
                continue
            op = Operation(
                op_id=event.id, op_type=event.type, customer_id=event.customer_id, at=event.created
            )

            def decide(record: Any, event: StripeEvent = event) -> Any:
                return self._decide(record, event, self._policy)

            self.repo.apply(op, decide, marker_ttl_days=35)
        return types

    def record(self, customer_id: str) -> BillingRecord:
        record = self.repo.get_record(customer_id)
        assert record is not None
        return record


def test_checkout_upgrade_and_scheduled_downgrade_drive_entitlements(
    checkout_fn: Caller, stripe_server: StripeServer, firestore_project: str
) -> None:
    pipeline = Pipeline(stripe_server, firestore_project)

    # 1. Checkout: Team + lineage + 2 extra seats, with the 30-day trial.
    resp = checkout_fn(
        "create_checkout_session",
        {"account_id": "acct_e2e", "plan": "team", "add_ons": ["lineage"], "seats": 2},
        account="acct_e2e",
    )
    assert resp.status_code == 200, resp.get_json()
    sub = stripe_server.complete_checkout(resp.get_json()["session_id"])
    customer_id = sub["customer"]
    assert pipeline.drain() == ["customer.subscription.created", "checkout.session.completed"]

    record = pipeline.record(customer_id)
    assert record.status == "trialing"
    assert record.account_id == "acct_e2e"
    ent = record.entitlements
    assert ent is not None
    assert ent.plan == "team"
    assert set(ent.add_ons) == {"lineage", "extra_seat"}
    assert "lineage_tracking" in ent.features and "slack_alerts" in ent.features
    assert "pagerduty_alerts" not in ent.features
    assert ent.limits.seats == 12 and ent.limits.tables == 25

    # 2. Upgrade to Business: immediate, so entitlements change with the next event.
    resp = checkout_fn(
        "change_subscription",
        {"account_id": "acct_e2e", "plan": "business", "add_ons": ["lineage"], "seats": 2},
        account="acct_e2e",
    )
    assert resp.get_json()["result"] == "applied"
    assert pipeline.drain() == ["customer.subscription.updated"]
    ent = pipeline.record(customer_id).entitlements
    assert ent is not None
    assert ent.plan == "business"
    assert "pagerduty_alerts" in ent.features and "api_access" in ent.features
    assert ent.limits.seats == 27 and ent.limits.tables == 100

    # 3. Downgrade to Starter: scheduled, nothing changes until the period ends...
    resp = checkout_fn(
        "change_subscription", {"account_id": "acct_e2e", "plan": "starter"}, account="acct_e2e"
    )
    assert resp.get_json()["result"] == "scheduled"
    assert pipeline.drain() == []
    assert pipeline.record(customer_id).entitlements == ent

    # ...then the phase flips and access follows.
    schedule_id = stripe_server.state.subscriptions[sub["id"]]["schedule"]
    stripe_server.advance_schedule(schedule_id)
    assert pipeline.drain() == ["customer.subscription.updated"]
    ent = pipeline.record(customer_id).entitlements
    assert ent is not None
    assert ent.plan == "starter"
    assert ent.add_ons == ()
    assert "lineage_tracking" not in ent.features and "slack_alerts" not in ent.features
    assert ent.limits.seats == 3 and ent.limits.tables == 5


def _target(sub: dict[str, Any]) -> PlanTarget:
    """The change_subscription target that turns the current state into `sub`'s items."""
    state = state_of(sub, CATALOG)
    assert state.plan is not None
    return PlanTarget(
        plan=state.plan,
        add_ons=tuple(sorted(state.add_ons)),
        seats=state.seats,
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [("upgrade", "upgrade"), ("addons_and_seats", None), ("downgrade_at_period_end", "downgrade")],
)
def test_generator_plan_change_scenarios_reach_expected_entitlements(
    firestore_project: str, name: str, kind: str | None
) -> None:
    """The generator's checkout + plan-change sequences give its hand-written outcome, and
    our proration policy classifies each change the way the scenario models it (an upgrade
    mid-period, a downgrade exactly at the period boundary)."""
    scenario = scenarios.build(name)
    pipeline = Pipeline(None, firestore_project)

    pipeline.apply(scenario.events)

    record = pipeline.record(scenario.customer_id)
    want = scenario.expected
    assert record.status == want.status
    assert record.access == want.access
    assert record.account_id == scenario.account_id
    ent = record.entitlements
    assert ent is not None
    assert ent.plan == want.plan
    assert tuple(sorted(ent.add_ons)) == tuple(sorted(want.add_ons))
    assert ent.limits.seats == want.seats

    sub_events = [e for e in scenario.events if e["type"].startswith("customer.subscription.")]
    states = []
    for event in sub_events:
        obj = event["data"]["object"]
        states.append(_target(obj))
    changes = [(a, b) for a, b in itertools.pairwise(states) if a != b]
    assert changes, "the scenario must contain a plan change"
    kinds = {classify(_current_of(a), b, CATALOG) for a, b in changes}
    if kind is not None:
        assert kinds == {kind}
    else:  # add-ons and seats added, then one add-on removed
        assert kinds == {"upgrade", "downgrade"}


def _current_of(req: PlanTarget) -> SubscriptionState:
    return SubscriptionState(req.plan, frozenset(req.add_ons), req.seats)
