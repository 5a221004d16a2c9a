"""Issue 17 row 13 on the real push path: the Pub/Sub emulator sends no deliveryAttempt and
its push loop has crashed when a message reached the dead-letter policy's count, so the
subscriber counts deliveries itself and dead-letters one attempt before the policy would:
the message is parked with its reason by us, never forwarded by the emulator."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from functions import stripe_events as events
from functions.adapters.firestore_repository import FirestoreRepository
from functions.config import CommonSettings
from infra.local.emulators import Emulators, free_port
from infra.local.scenarios import build
from infra.local.stack import SUBSCRIBER_TARGET, start_function
from infra.local.topology import Topology, desired_topology, provision
from tests.integration.test_pipeline_failures import publish_event, wait_for
from tests.support.pubsub import pull_all

pytestmark = pytest.mark.emulator


def test_a_message_that_keeps_failing_is_dead_lettered_by_the_subscriber_before_the_policy(
    emulators: Emulators,
) -> None:
    project = f"limit-{uuid.uuid4().hex[:8]}"
    port = free_port()
    settings = CommonSettings(google_cloud_project=project)
    full = desired_topology(
        settings,
        subscriber_push_endpoint=f"http://127.0.0.1:{port}/",
        max_delivery_attempts=5,
    )
    # No entitlement-changed topic: every delivery commits (once) and then fails to
    # relay, a transient failure that no redelivery cures.
    provision(
        project,
        Topology(
            topics=tuple(t for t in full.topics if t.name != settings.entitlements_topic),
            subscriptions=tuple(
                s for s in full.subscriptions if s.topic != settings.entitlements_topic
            ),
        ),
    )
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        **emulators.env(),
        "MAX_DELIVERY_ATTEMPTS": "5",
    }
    function = start_function(SUBSCRIBER_TARGET, port, env, signature_type="cloudevent")
    try:
        scenario = build("checkout_active", customer_id="cus_limit", account_id="acct_limit")
        publish_event(project, scenario.events[0])

        [dead] = pull_all(project, "stripe-events-dead-letter-ops", expect=1, deadline=150)
        assert json.loads(dead.data)["id"] == scenario.events[0]["id"]
        assert dead.attributes[events.DEAD_LETTER_REASON_CODE] == "retries_exhausted"
        assert dead.attributes[events.DEAD_LETTERED_BY] == "subscriber"
        assert "gave up after 4 attempts" in dead.attributes[events.DEAD_LETTER_REASON]
        assert events.SOURCE_DELIVERY_COUNT not in dead.attributes  # not the emulator's policy

        def lines() -> list[dict[str, object]]:
            out = []
            for line in function.logs().splitlines():
                if line.startswith("{") and '"event_failed"' in line:
                    out.append(json.loads(line))
            return out

        wait_for(lambda: any(not x["transient"] for x in lines()), 10, "the final log line")
        assert [x["attempt"] for x in lines() if x["transient"]] == [1, 2, 3]
        failure = FirestoreRepository(project).get_failure(scenario.events[0]["id"])
        assert failure is not None and failure.dead_lettered
        assert failure.reason_code == "retries_exhausted"
        # Acknowledged: no fifth delivery, and nothing more reaches the dead-letter topic.
        time.sleep(4)
        assert len(lines()) == 4
        assert pull_all(project, "stripe-events-dead-letter-ops", deadline=2) == []
    finally:
        function.stop()
