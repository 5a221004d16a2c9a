"""The differential check on the real path: simulator stories delivered shuffled, with
duplicates and late events, through the real Subscriber (Firestore transaction, outbox,
relay) on the emulators; the re-evaluation job's service on its ticks; anomalies answered
by ReconcileService reading the simulator's objects over HTTP through the real gateway
(the simulator loaded into the local Stripe server)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from functions.config import CommonSettings
from functions.services.reconcile import ReconcileService
from functions.services.reevaluate import reevaluate_due
from functions.services.subscriber import IncomingMessage
from infra.local import observe
from infra.local.topology import OBSERVER_STRIPE_EVENTS_SUBSCRIPTION
from schemas.documents import BillingRecord
from schemas.stripe import Subscription
from statemachine.decision import Policy
from tests.integration.subscriber_support import (
    make_subscriber,
    message,
    new_project,
    reconciler,
)
from tests.support.differential import TICK, Oracle, Report, World, deliveries, judge, run, world
from tests.support.simulator import DAY
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator
POLICY = Policy()


class EmulatorTarget:
    def __init__(self, project: str, settings: CommonSettings, server: StripeServer) -> None:
        self.project, self.settings, self.server = project, settings, server
        self.repo = FirestoreRepository(project)
        self.subscriber = make_subscriber(project, settings, repo=self.repo)
        self._deadlines: dict[str, int] = {}  # customer -> earliest deadline (skips idle ticks)
        self.reevaluations = 0
        self.deadlines_seen = 0

    def _remember(self, customer_id: str) -> None:
        record = self.repo.get_record(customer_id)
        times = [] if record is None else [record.grace_until, record.access_until]
        if record is not None and record.override is not None:
            times.append(record.override.expires_at)
        pending = [t for t in times if t is not None]
        if pending:
            self._deadlines[customer_id] = min(pending)
            self.deadlines_seen += 1
        else:
            self._deadlines.pop(customer_id, None)

    def deliver(self, event: dict[str, Any]) -> str:
        outcome = self.subscriber.handle(message(event))
        if outcome.customer_id:
            self._remember(outcome.customer_id)
        return outcome.decision

    def reevaluate(self, now: int) -> None:
        if not any(t <= now for t in self._deadlines.values()):
            return  # the job would find nobody due: skip the three queries
        result = reevaluate_due(self.subscriber.applier, POLICY, now)
        assert not result.failed, result
        self.reevaluations += 1
        for customer in [c for c, t in self._deadlines.items() if t <= now]:
            self._remember(customer)

    def record(self, customer_id: str) -> BillingRecord | None:
        return self.repo.get_record(customer_id)

    def reconciler(self, now: int) -> ReconcileService:
        return reconciler(self.subscriber, self.settings, self.server.url, now)

    def reconcile(self, record: BillingRecord, sub: Subscription | None, now: int) -> BillingRecord:
        self.reconciler(now).reconcile(record.customer_id, actor="test@differential")
        fixed = self.repo.get_record(record.customer_id)
        assert fixed is not None
        return fixed


@pytest.fixture
def stack(emulators: Any) -> Iterator[tuple[str, CommonSettings, StripeServer]]:
    project, settings = new_project()
    server = StripeServer().start()
    yield project, settings, server
    server.stop()


@pytest.mark.parametrize(("seed", "after_retries"), [(20261202, "unpaid"), (7, "past_due")])
def test_simulator_stories_through_the_real_subscriber_agree_with_stripe(
    stack: tuple[str, CommonSettings, StripeServer], seed: int, after_retries: str
) -> None:
    project, settings, server = stack
    w: World = world(seed, 15, after_retries=after_retries)
    w.sim.load_into(server)
    target = EmulatorTarget(project, settings, server)

    report = run(w, target, POLICY, shuffled=True, rng=random.Random(seed))

    assert report.disagreements == [], report.table()
    assert sum(report.stories.values()) == 15
    # Grace and period-end deadlines were set along the way (the job's service runs on the
    # ticks after them; later events often settle them first).
    assert target.deadlines_seen > 0


def test_catch_up_reads_the_simulator_over_http_and_delivers_what_the_webhook_missed(
    stack: tuple[str, CommonSettings, StripeServer],
) -> None:
    """Stripe never delivered some recent events. The nightly catch-up lists them from the
    simulator through the real gateway and republishes them on stripe-events; applied by
    the subscriber, every customer then agrees with Stripe as if nothing had been missed."""
    project, settings, server = stack
    w = world(11, 15, after_retries="cancel")
    end = w.sim.now + TICK
    rng = random.Random(11)
    handled = [e for _, e in deliveries(w.sim.events, rng, shuffled=False)]
    recent = [e for e in handled if e["created"] >= end - 20 * DAY]
    missed = {e["id"] for e in recent if rng.random() < 0.3}
    assert missed
    w.sim.load_into(server, undelivered=missed)
    target = EmulatorTarget(project, settings, server)
    for event in handled:
        if event["id"] not in missed:
            target.deliver(event)

    caught = target.reconciler(end).catch_up(end - 30 * DAY)
    assert set(caught.published) == missed and not caught.failed
    for m in observe.drain(project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION):
        target.subscriber.handle(IncomingMessage(m.data, m.attributes, m.message_id))
    target.reevaluate(end - end % TICK)

    oracle = Oracle(POLICY, w.composition)
    for event in w.sim.events:
        oracle.feed(event)
    report = Report()
    judge(w, target, POLICY, oracle, end - end % TICK, report)
    assert report.disagreements == [], report.table()
    assert all(target.repo.is_processed(event_id) for event_id in missed)
