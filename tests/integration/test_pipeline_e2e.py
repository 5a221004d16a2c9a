"""The whole pipeline, as deployed, on the emulators: signed HTTP webhook -> Pub/Sub ->
push to the real functions-framework subscriber -> Firestore -> entitlement-changed.

Every scenario of the generator is played in order, and again shuffled with duplicates.
Shuffled delivery must end where in-order delivery ends, or be flagged as an anomaly
that the reconcile path (reading Stripe, here the local wire-format server) resolves.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from functions.firestore_repository import FirestoreRepository
from functions.ops.reconcile import ReconcileService
from functions.publisher import PubSubPublisher
from functions.relay import OutboxRelay
from functions.stripe_gateway import SdkStripeGateway
from infra.local.emulators import Emulators
from infra.local.signing import sign
from infra.local.stack import LocalStack
from schemas.documents import BillingRecord
from statemachine.decision import Policy
from statemachine.scenarios import SCENARIOS, Scenario, build
from tests.integration.subscriber_support import entitlements, versions_after_dedupe
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator
SECRET = "whsec_e2e_pipeline_secret"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[LocalStack]:
    with LocalStack(env={"STRIPE_WEBHOOK_SECRET": SECRET}, emulators=emulators) as running:
        yield running


def post(stack: LocalStack, event: dict[str, Any]) -> int:
    body = json.dumps(event).encode()
    request = urllib.request.Request(
        stack.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, [SECRET], int(time.time())),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def play(stack: LocalStack, deliveries: dict[str, list[dict[str, Any]]]) -> None:
    """Each customer's deliveries in sequence; customers in parallel, as Stripe does."""
    errors: list[BaseException] = []

    def run(events: list[dict[str, Any]]) -> None:
        try:
            for event in events:
                assert post(stack, event) == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(evs,)) for evs in deliveries.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def wait_processed(repo: FirestoreRepository, event_ids: set[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    remaining = set(event_ids)
    while remaining and time.monotonic() < deadline:
        remaining = {e for e in remaining if not repo.is_processed(e)}
        if remaining:
            time.sleep(0.25)
    assert not remaining, f"{len(remaining)} events never processed, e.g. {sorted(remaining)[:3]}"


def outcome(record: BillingRecord | None) -> tuple[Any, ...]:
    assert record is not None
    plan = record.entitlements.plan if record.entitlements else None
    return (record.status, record.access, plan)


def scenarios(tag: str) -> list[Scenario]:
    return [
        build(name, customer_id=f"cus_{tag}_{name}", account_id=f"acct_{tag}_{name}")
        for name in SCENARIOS
    ]


def check_entitlement_stream(
    project: str, repo: FirestoreRepository, played: list[Scenario]
) -> None:
    received = entitlements(project, quiet_seconds=2.0)
    versions = versions_after_dedupe(received)
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        assert record is not None
        assert versions.get(scenario.customer_id, []) == list(range(1, record.version + 1))
        if record.version:
            last = max(
                (r for r in received if r.customer_id == scenario.customer_id),
                key=lambda r: r.version,
            )
            payload = json.loads(last.data)
            assert (payload["status"], payload["access"]) == (record.status, record.access.value)
            assert last.attributes["causing_event_id"] == payload["causing_event_id"]


def test_every_scenario_in_order(stack: LocalStack) -> None:
    played = scenarios("inorder")
    play(stack, {s.customer_id: list(s.events) for s in played})
    repo = FirestoreRepository(stack.project)
    wait_processed(repo, {e["id"] for s in played for e in s.events})

    for scenario in played:
        expected = scenario.expected
        assert outcome(repo.get_record(scenario.customer_id)) == (
            expected.status,
            expected.access,
            expected.plan,
        ), scenario.name
    check_entitlement_stream(stack.project, repo, played)


def test_every_scenario_shuffled_with_duplicates(stack: LocalStack) -> None:
    played = scenarios("shuffled")
    rng = random.Random(20261123)
    deliveries = {}
    for scenario in played:
        events = list(scenario.events)
        rng.shuffle(events)
        events += rng.sample(events, k=min(2, len(events)))  # Stripe's duplicates
        deliveries[scenario.customer_id] = events
    play(stack, deliveries)
    repo = FirestoreRepository(stack.project)
    wait_processed(repo, {e["id"] for s in played for e in s.events})

    flagged = []
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        expected = scenario.expected
        if outcome(record) != (expected.status, expected.access, expected.plan):
            assert record is not None and record.anomalies, (
                f"{scenario.name}: silently wrong state {outcome(record)}"
            )
            flagged.append(scenario)
        assert len(repo.history(scenario.customer_id, limit=100)) == len(scenario.events)
    check_entitlement_stream(stack.project, repo, played)
    if flagged:
        resolve_by_reconcile(stack, repo, flagged)


def resolve_by_reconcile(
    stack: LocalStack, repo: FirestoreRepository, flagged: list[Scenario]
) -> None:
    """What on-call runs for anomalies: reconcile against Stripe's current objects."""
    server = StripeServer().start()
    try:
        for scenario in flagged:
            if scenario.final_subscription:
                server.state.subscriptions[scenario.final_subscription["id"]] = (
                    scenario.final_subscription
                )
        for scenario in flagged:
            publisher = PubSubPublisher(stack.project)
            service = ReconcileService(
                repo,
                OutboxRelay(repo, publisher, "entitlement-changed"),
                SdkStripeGateway("sk_test_e2e", api_base=server.url),
                Policy(),
                publisher=publisher,
                events_topic="stripe-events",
                marker_ttl_days=35,
                clock=lambda s=scenario: float(s.end_time),
            )
            service.reconcile(scenario.customer_id)
            expected = scenario.expected
            assert outcome(repo.get_record(scenario.customer_id)) == (
                expected.status,
                expected.access,
                expected.plan,
            ), scenario.name
    finally:
        server.stop()
