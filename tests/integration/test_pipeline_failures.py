"""Failure paths through the real push pipeline: poison messages and a Firestore outage."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.config import CommonSettings
from infra.local.emulators import Emulators, _start, _wait_ready, free_port
from infra.local.scenarios import build
from infra.local.stack import SUBSCRIBER_TARGET, RunningFunction, start_function
from infra.local.topology import desired_topology, provision
from tests.support.pubsub import pull_all

pytestmark = pytest.mark.emulator


def publish_event(project: str, event: dict[str, Any]) -> None:
    """What the webhook does after verifying: the raw bytes, keyed by customer."""
    customer = event["data"]["object"].get("customer") or ""
    PubSubPublisher(project).publish(
        "stripe-events",
        json.dumps(event).encode(),
        attributes={"event_id": event["id"], "event_type": event["type"], "customer_id": customer},
        ordering_key=customer,
    )


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def pipeline(emulators: Emulators) -> Iterator[tuple[str, RunningFunction]]:
    project = f"fail-{uuid.uuid4().hex[:8]}"
    port = free_port()
    provision(
        project,
        desired_topology(
            CommonSettings(google_cloud_project=project),
            subscriber_push_endpoint=f"http://127.0.0.1:{port}/",
            observer_subscriptions=True,
        ),
    )
    function = start_function(
        SUBSCRIBER_TARGET,
        port,
        {"GOOGLE_CLOUD_PROJECT": project, **emulators.env()},
        signature_type="cloudevent",
    )
    yield project, function
    function.stop()


def test_poison_message_is_dead_lettered_with_reason_and_others_keep_flowing(
    pipeline: tuple[str, RunningFunction],
) -> None:
    project, function = pipeline
    publisher = PubSubPublisher(project)
    # Garbage on the same ordering key as a healthy customer's events, in front of them.
    publisher.publish(
        "stripe-events",
        b'{"id": "evt_poison", "object": "event", "type": "customer.subscription.updated"',
        attributes={"event_id": "evt_poison", "customer_id": "cus_victim"},
        ordering_key="cus_victim",
    )
    victim = build("checkout_active", customer_id="cus_victim", account_id="acct_victim")
    other = build("trial_converts", customer_id="cus_other", account_id="acct_other")
    for event in (*victim.events, *other.events):
        publish_event(project, event)

    repo = FirestoreRepository(project)
    every = [e["id"] for e in (*victim.events, *other.events)]
    wait_for(lambda: all(repo.is_processed(e) for e in every), 60, "healthy events")
    for scenario in (victim, other):
        record = repo.get_record(scenario.customer_id)
        assert record is not None and record.status == scenario.expected.status

    [dead] = pull_all(project, "stripe-events-dead-letter-ops", expect=1, deadline=20)
    assert dead.data.startswith(b'{"id": "evt_poison"')
    assert dead.attributes["dead_letter_reason_code"] == "invalid_payload"
    assert dead.attributes["customer_id"] == "cus_victim"
    failures = repo.list_failures()
    assert [f.reason_code for f in failures] == ["invalid_payload"]
    assert failures[0].dead_lettered and "json" in failures[0].reason.lower()
    assert '"message": "event_failed"' in function.logs()


def test_firestore_outage_is_retried_until_it_is_back(emulators: Emulators) -> None:
    project = f"outage-{uuid.uuid4().hex[:8]}"
    port, dead_firestore = free_port(), f"127.0.0.1:{free_port()}"
    provision(
        project,
        desired_topology(
            CommonSettings(google_cloud_project=project),
            subscriber_push_endpoint=f"http://127.0.0.1:{port}/",
            max_delivery_attempts=100,  # the outage must not exhaust the retry budget
            observer_subscriptions=True,
        ),
    )
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_EMULATOR_HOST": emulators.pubsub_host,
        "FIRESTORE_EMULATOR_HOST": dead_firestore,
        # Equal to the subscription's policy, as deployed: the subscriber gives up one before.
        "MAX_DELIVERY_ATTEMPTS": "100",
    }
    function = start_function(SUBSCRIBER_TARGET, port, env, signature_type="cloudevent")
    firestore = None
    try:
        scenario = build("checkout_active", customer_id="cus_outage", account_id="acct_outage")
        publish_event(project, scenario.events[0])
        wait_for(lambda: '"transient": true' in function.logs(), 60, "a transient failure")

        firestore = _start(
            "firestore",
            ["emulators", "firestore", "start"],
            dead_firestore,
            Path(tempfile.mkdtemp(prefix="outage-")),
        )
        _wait_ready(firestore, time.monotonic() + 60)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FIRESTORE_EMULATOR_HOST", dead_firestore)
            repo = FirestoreRepository(project)
            wait_for(lambda: repo.is_processed(scenario.events[0]["id"]), 120, "recovery")
            assert len(repo.history("cus_outage")) == 1
        assert pull_all(project, "stripe-events-dead-letter-ops", deadline=2) == []
    finally:
        function.stop()
        if firestore is not None:
            firestore.stop()
