"""The whole pipeline, as deployed, on the emulators: signed HTTP webhook -> Pub/Sub ->
push to the real functions-framework subscriber -> Firestore -> entitlement-changed.

Every scenario of the generator is played in order, and again shuffled with duplicates.
Shuffled delivery must end where in-order delivery ends, or be flagged as an anomaly
that the reconcile path (reading Stripe, here the local wire-format server) resolves.
The delivery helpers are the demo's (`make demo`), so the demo is what is tested.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from infra.local import contract, demo
from infra.local.emulators import Emulators
from infra.local.scenarios import SCENARIOS, Scenario, build
from infra.local.stack import LocalStack
from tests.integration.subscriber_support import entitlements, versions_after_dedupe

pytestmark = pytest.mark.emulator
SECRET = "whsec_e2e_pipeline_secret"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[LocalStack]:
    with LocalStack(env={"STRIPE_WEBHOOK_SECRET": SECRET}, emulators=emulators) as running:
        yield running


def scenarios(tag: str) -> list[Scenario]:
    return [
        build(name, customer_id=f"cus_{tag}_{name}", account_id=f"acct_{tag}_{name}")
        for name in SCENARIOS
    ]


def check_entitlement_stream(
    project: str, repo: FirestoreRepository, played: list[Scenario]
) -> None:
    received = entitlements(project, quiet_seconds=2.0)
    # Every message holds the exported v1 schema, as a consumer validating it would see.
    broken = [p for r in received for p in contract.violations(json.loads(r.data), r.attributes)]
    assert broken == []
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
    demo.play(stack.webhook_url, SECRET, {s.customer_id: list(s.events) for s in played})
    repo = FirestoreRepository(stack.project)
    demo.wait_processed(repo, {e["id"] for s in played for e in s.events})

    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        assert demo.outcome(record) == demo.expected_outcome(scenario), scenario.name
    check_entitlement_stream(stack.project, repo, played)


@pytest.mark.parametrize("seed", [20261123, 7, 99])
def test_every_scenario_shuffled_with_duplicates(stack: LocalStack, seed: int) -> None:
    played = scenarios(f"shuffled{seed}")
    rng = random.Random(seed)
    deliveries = {s.customer_id: demo.shuffled_with_duplicates(s, rng) for s in played}
    demo.play(stack.webhook_url, SECRET, deliveries)
    repo = FirestoreRepository(stack.project)
    demo.wait_processed(repo, {e["id"] for s in played for e in s.events})

    flagged = []
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        if demo.outcome(record) != demo.expected_outcome(scenario):
            assert record is not None and record.anomalies, (
                f"{scenario.name}: silently wrong state {demo.outcome(record)}"
            )
            flagged.append(scenario)
        # One audit entry per distinct event: duplicates had no second effect.
        assert len(repo.history(scenario.customer_id, limit=100)) == len(scenario.events)
    check_entitlement_stream(stack.project, repo, played)

    demo.reconcile_flagged(stack, repo, flagged)
    for scenario in flagged:
        record = repo.get_record(scenario.customer_id)
        assert demo.outcome(record) == demo.expected_outcome(scenario), scenario.name


def test_trace_id_follows_the_event_to_logs_and_entitlements(stack: LocalStack) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    scenario = build("checkout_active", customer_id="cus_traced", account_id="acct_traced")
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    for event in scenario.events:
        assert demo.post(stack.webhook_url, SECRET, event, headers) == 200
    repo = FirestoreRepository(stack.project)
    demo.wait_processed(repo, {e["id"] for e in scenario.events})

    def processed_lines() -> list[dict[str, Any]]:
        subscriber = next(f for f in stack.functions if f.target == "process_stripe_event")
        lines = [json.loads(x) for x in subscriber.logs().splitlines() if x.startswith("{")]
        return [
            x for x in lines if x.get("trace_id") == trace_id and x["message"] == "event_processed"
        ]

    # The log line follows the commit and the relay: give it a moment after the marker.
    deadline = time.monotonic() + 10
    while len(processed_lines()) < len(scenario.events) and time.monotonic() < deadline:
        time.sleep(0.2)
    processed = processed_lines()
    assert {line["event_id"] for line in processed} == {e["id"] for e in scenario.events}
    assert all(
        line["logging.googleapis.com/trace"] == f"projects/{stack.project}/traces/{trace_id}"
        for line in processed
    )
    received = [r for r in entitlements(stack.project) if r.customer_id == "cus_traced"]
    assert received and all(r.attributes["trace_id"] == trace_id for r in received)
    assert all(json.loads(r.data)["trace_id"] == trace_id for r in received)
