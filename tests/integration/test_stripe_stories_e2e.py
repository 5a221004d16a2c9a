"""Issue 12's a-k stories through the real path on the emulators: each event through the
Subscriber (parse, decide, Firestore transaction, outbox, relay to Pub/Sub), the
re-evaluation job's service, operator overrides through AccountService, and reconcile
through ReconcileService reading the local Stripe server over HTTP with the real gateway.
Published versions are read back from the entitlement-changed topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.adapters.firestore_audit import FirestoreAuditLog
from functions.adapters.firestore_repository import FirestoreRepository
from functions.config import CommonSettings
from functions.services.accounts import AccountService
from functions.services.reconcile import ReconcileService
from functions.services.reevaluate import reevaluate_due
from infra.local.scenarios import DAY, START, Event, subscription_event
from infra.local.topology import OBSERVER_ENTITLEMENTS_SUBSCRIPTION
from schemas.documents import BillingRecord, Override
from schemas.stripe import Subscription
from statemachine.decision import Policy
from tests.integration.subscriber_support import (
    drain,
    make_subscriber,
    message,
    new_project,
    reconciler,
)
from tests.support.stripe_server import StripeServer
from tests.support.stripe_stories import STORIES, Deliver, Reconcile, Story, run, story_k

pytestmark = pytest.mark.emulator


class EmulatorRunner:
    def __init__(self, project: str, settings: CommonSettings, server: StripeServer) -> None:
        self.project = project
        self.repo = FirestoreRepository(project)
        self.subscriber = make_subscriber(project, settings, repo=self.repo)
        self.audit = FirestoreAuditLog(project)
        self.server = server
        self.settings = settings
        self._published: dict[str, list[int]] = {}

    def deliver(self, event: Event) -> str:
        return self.subscriber.handle(message(event)).decision

    def reevaluate(self, customer_id: str, now: int) -> None:
        result = reevaluate_due(self.subscriber.applier, Policy(), now)
        assert not result.failed, result

    def set_override(self, customer_id: str, override: Override, now: int) -> None:
        service = AccountService(self.subscriber.applier, self.audit, Policy(), clock=lambda: now)
        service.set_override(
            customer_id,
            access=override.access,
            reason=override.reason,
            actor=override.actor,
            expires_at=override.expires_at,
        )

    def reconcile(self, customer_id: str, subscriptions: list[Subscription], now: int) -> None:
        for sub in subscriptions:
            self.server.state.subscriptions[sub.id] = sub.model_dump(mode="json")
        _reconciler(self, now).reconcile(customer_id, actor="test@stories")

    def record(self, customer_id: str) -> BillingRecord:
        record = self.repo.get_record(customer_id)
        assert record is not None
        return record

    def published_versions(self, customer_id: str) -> list[int]:
        for received in drain(self.project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION):
            self._published.setdefault(received.customer_id, []).append(received.version)
        return sorted(self._published.get(customer_id, []))

    def due(self, now: int) -> list[str]:
        return self.repo.due_for_review(now)


@pytest.fixture(scope="module")
def world(emulators: Any) -> Iterator[tuple[str, CommonSettings, StripeServer]]:
    project, settings = new_project()
    server = StripeServer().start()
    yield project, settings, server
    server.stop()


@pytest.mark.parametrize("make", STORIES, ids=lambda make: f"{make().letter}-{make().name}")
def test_story_agrees_with_stripe_through_the_subscriber(
    world: tuple[str, CommonSettings, StripeServer], make: Any
) -> None:
    project, settings, server = world
    story: Story = make()
    run(story, EmulatorRunner(project, settings, server))


def _reconciler(runner: EmulatorRunner, now: int) -> ReconcileService:
    return reconciler(runner.subscriber, runner.settings, runner.server.url, now)


def test_open_anomalies_are_reconciled_and_only_the_unresolvable_one_is_reported(
    world: tuple[str, CommonSettings, StripeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    """An anomaly is not a waiting room: the every-minute job reconciles it against Stripe;
    what Stripe's objects cannot answer (a price we do not know) stays open and is logged
    as anomaly_unresolved, the line that pages on-call."""
    project, settings, server = world
    runner = EmulatorRunner(project, settings, server)
    # Its own account: a second customer naming story k's account is account_taken.
    two_live = story_k("cus_anomaly_two", "acct_anomaly_two")
    for step in two_live.steps:
        if isinstance(step, Deliver):
            runner.deliver(step.event)
        elif isinstance(step, Reconcile):
            for raw in step.subscriptions:
                server.state.subscriptions[raw["id"]] = raw
    unknown = subscription_event(
        "customer.subscription.created",
        START,
        customer_id="cus_anomaly_price",
        sub_id="sub_unknown_price",
        prices={"enterprise_gold_monthly": 1},
    )
    server.state.subscriptions["sub_unknown_price"] = unknown["data"]["object"]
    assert runner.deliver(unknown) == "anomaly"
    before = runner.repo.with_open_anomalies()
    assert {"cus_anomaly_two", "cus_anomaly_price"} <= set(before)

    summary = _reconciler(runner, START + 6 * DAY).reconcile_anomalies()

    assert runner.record("cus_anomaly_two").anomalies == []
    assert runner.record("cus_anomaly_two").entitlements.plan == "team"  # type: ignore[union-attr]
    assert "cus_anomaly_price" in runner.repo.with_open_anomalies()
    assert "cus_anomaly_two" not in runner.repo.with_open_anomalies()
    assert summary["unresolved"] >= 1 and summary["resolved"] >= 1 and summary["failed"] == 0
    logged = capsys.readouterr()
    assert '"anomaly_unresolved"' in logged.out + logged.err
    assert "cus_anomaly_price" in logged.out + logged.err
