"""Issue 12's a-k stories through the pure domain (the same stories run through the real
Subscriber on the emulators in tests/integration/test_stripe_stories_e2e.py)."""

from __future__ import annotations

import pytest

import statemachine
from infra.local.scenarios import Event
from schemas.documents import BillingRecord, Override
from schemas.stripe import StripeEvent, Subscription
from statemachine.decision import Decision, Policy
from statemachine.subscriptions import governing
from tests.support.fake_repository import is_due
from tests.support.stripe_stories import STORIES, Story, run

POLICY = Policy()


class DomainRunner:
    def __init__(self) -> None:
        self.records: dict[str, BillingRecord] = {}
        self.versions: dict[str, list[int]] = {}

    def _keep(self, customer_id: str, decision: Decision) -> str:
        self.records[customer_id] = decision.record
        if decision.entitlements_changed:
            self.versions.setdefault(customer_id, []).append(decision.record.version)
        return decision.kind

    def _current(self, customer_id: str) -> BillingRecord:
        return self.records.get(customer_id) or BillingRecord(customer_id=customer_id)

    def deliver(self, event: Event) -> str:
        parsed = StripeEvent.model_validate(event)
        assert parsed.customer_id is not None
        decision = statemachine.decide(self._current(parsed.customer_id), parsed, POLICY)
        return self._keep(parsed.customer_id, decision)

    def reevaluate(self, customer_id: str, now: int) -> None:
        decision = statemachine.reevaluate(self._current(customer_id), now, POLICY)
        # Like functions/services/reevaluate.py: a noop is not written.
        if decision.kind != "noop":
            self._keep(customer_id, decision)

    def set_override(self, customer_id: str, override: Override, now: int) -> None:
        decision = statemachine.set_override(self._current(customer_id), override, now, POLICY)
        self._keep(customer_id, decision)

    def reconcile(self, customer_id: str, subscriptions: list[Subscription], now: int) -> None:
        record = self._current(customer_id)
        chosen = governing(subscriptions, record.subscription_id, POLICY.catalog)
        self._keep(customer_id, statemachine.reconcile(record, chosen, now, POLICY))

    def record(self, customer_id: str) -> BillingRecord:
        return self.records[customer_id]

    def published_versions(self, customer_id: str) -> list[int]:
        return self.versions.get(customer_id, [])

    def due(self, now: int) -> list[str]:
        return [c for c, r in self.records.items() if is_due(r, now)]


@pytest.mark.parametrize("make", STORIES, ids=lambda make: f"{make().letter}-{make().name}")
def test_story_agrees_with_stripe(make: object) -> None:
    assert callable(make)
    story: Story = make()
    run(story, DomainRunner())
