"""PubSubPublisher against the emulator: failures are TransientError, a key never stays stuck."""

from __future__ import annotations

import pytest
from google.cloud.pubsub_v1 import PublisherClient

from functions.errors import TransientError
from functions.publisher import PubSubPublisher
from infra.local.topology import OBSERVER_STRIPE_EVENTS_SUBSCRIPTION
from tests.conftest import ProvisionedProject
from tests.support.pubsub import pull_all

pytestmark = pytest.mark.emulator


def test_publishes_with_attributes_and_ordering_key(pubsub_project: ProvisionedProject) -> None:
    publisher = PubSubPublisher(pubsub_project.project)
    ids = [
        publisher.publish(
            "stripe-events", f"m{n}".encode(), attributes={"n": str(n)}, ordering_key="k"
        )
        for n in range(3)
    ]
    assert len(set(ids)) == 3
    got = pull_all(pubsub_project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=3)
    assert [(m.data, m.attributes, m.ordering_key) for m in got] == [
        (f"m{n}".encode(), {"n": str(n)}, "k") for n in range(3)
    ]


def test_failed_key_recovers_once_the_topic_exists(pubsub_project: ProvisionedProject) -> None:
    publisher = PubSubPublisher(pubsub_project.project)
    with pytest.raises(TransientError, match="late-topic"):
        publisher.publish("late-topic", b"x", attributes={}, ordering_key="cus_1", timeout=10)
    admin = PublisherClient()
    admin.create_topic(name=admin.topic_path(pubsub_project.project, "late-topic"))
    # Same client, same key: had the key stayed paused this would fail immediately.
    assert publisher.publish("late-topic", b"y", attributes={}, ordering_key="cus_1")
