"""One behavioural suite, two publishers: the in-memory fake and PubSubPublisher on the emulator.

Unit tests of the webhook and the subscriber trust FakePublisher; this suite is what keeps
it honest. Each adapter comes with a way to read back what it published (the fake's
message list, or the local observer subscriptions pulled from the emulator) and to create
a topic later, so every test body is shared.

Only the "pubsub" variants need the emulators, so only they carry the emulator marker:
`-m "not emulator"` still checks the fake against the contract.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from google.cloud.pubsub_v1 import PublisherClient

from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.config import CommonSettings
from functions.errors import TransientError
from functions.ports import Publisher
from infra.local.topology import (
    OBSERVER_ENTITLEMENTS_SUBSCRIPTION,
    OBSERVER_STRIPE_EVENTS_SUBSCRIPTION,
    Topology,
    desired_topology,
)
from tests.conftest import UNUSED_PUSH_ENDPOINT, ProvisionedProject
from tests.support.fake_publisher import FakePublisher
from tests.support.pubsub import Received, pull_all

OBSERVERS = {OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, OBSERVER_ENTITLEMENTS_SUBSCRIPTION}


@dataclass
class Adapter:
    publisher: Publisher
    # Topics that exist and have an observer subscription to read them back.
    events_topic: str
    entitlements_topic: str
    # read(topic, expect): what arrived on `topic` since the last read, in arrival order.
    read: Callable[[str, int], list[Received]]
    create_topic: Callable[[str], None]
    _closers: list[Callable[[], None]] = field(default_factory=list)


def observed_topics(topology: Topology) -> dict[str, str]:
    """Topic name -> its observer subscription."""
    return {s.topic: s.name for s in topology.subscriptions if s.name in OBSERVERS}


def fake_adapter() -> Adapter:
    # The same topology the emulator project is provisioned with, so the fake knows
    # exactly the topics the emulator has.
    settings = CommonSettings(google_cloud_project="contract-fake")
    topology = desired_topology(
        settings, subscriber_push_endpoint=UNUSED_PUSH_ENDPOINT, observer_subscriptions=True
    )
    fake = FakePublisher(topics={t.name for t in topology.topics})
    assert set(observed_topics(topology)) == {
        settings.stripe_events_topic,
        settings.entitlements_topic,
    }
    seen: dict[str, int] = {}

    def read(topic: str, expect: int) -> list[Received]:
        # Like pulling with acks: each message is returned once.
        messages = fake.on(topic)[seen.get(topic, 0) :]
        seen[topic] = seen.get(topic, 0) + len(messages)
        return [Received(m.data, m.attributes, m.ordering_key, m.message_id) for m in messages]

    def create_topic(name: str) -> None:
        assert fake.topics is not None
        fake.topics.add(name)

    return Adapter(
        publisher=fake,
        events_topic=settings.stripe_events_topic,
        entitlements_topic=settings.entitlements_topic,
        read=read,
        create_topic=create_topic,
    )


def pubsub_adapter(project: ProvisionedProject) -> Adapter:
    settings = CommonSettings(google_cloud_project=project.project)
    observers = observed_topics(project.topology)
    admin = PublisherClient()

    def read(topic: str, expect: int) -> list[Received]:
        return pull_all(project.project, observers[topic], expect=expect)

    def create_topic(name: str) -> None:
        admin.create_topic(name=admin.topic_path(project.project, name))

    return Adapter(
        publisher=PubSubPublisher(project.project),
        events_topic=settings.stripe_events_topic,
        entitlements_topic=settings.entitlements_topic,
        read=read,
        create_topic=create_topic,
        _closers=[admin.transport.close],
    )


@pytest.fixture(params=["fake", pytest.param("pubsub", marks=pytest.mark.emulator)])
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    if request.param == "fake":
        made = fake_adapter()
    else:
        made = pubsub_adapter(request.getfixturevalue("pubsub_project"))
    yield made
    for close in made._closers:
        close()


def test_ids_are_non_empty_distinct_and_are_what_subscribers_see(adapter: Adapter) -> None:
    publish = adapter.publisher.publish
    ids = [publish(adapter.events_topic, f"e{n}".encode(), attributes={}) for n in range(3)]
    ids.append(publish(adapter.entitlements_topic, b"x", attributes={}))

    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)
    got = adapter.read(adapter.events_topic, 3) + adapter.read(adapter.entitlements_topic, 1)
    assert sorted(m.message_id for m in got) == sorted(ids)


def test_read_back_intact_and_in_publish_order_per_key(adapter: Adapter) -> None:
    sent = [
        (f"{key}-{n}".encode(), {"n": str(n), "key": key}, key)
        for n in range(3)
        for key in ("cus_a", "cus_b")
    ]
    sent.append((b"no key", {"n": "none"}, ""))
    for data, attributes, key in sent:
        adapter.publisher.publish(
            adapter.events_topic, data, attributes=attributes, ordering_key=key
        )
    adapter.publisher.publish(adapter.entitlements_topic, b"other topic", attributes={})

    got = [(m.data, m.attributes, m.ordering_key) for m in adapter.read(adapter.events_topic, 7)]

    def by_data(m: tuple[bytes, dict[str, str], str]) -> bytes:
        return m[0]

    # All of them, intact, and nothing from the other topic.
    assert sorted(got, key=by_data) == sorted(sent, key=by_data)
    for key in ("cus_a", "cus_b"):
        assert [m for m in got if m[2] == key] == [m for m in sent if m[2] == key]
    assert adapter.read(adapter.entitlements_topic, 1)[0].data == b"other topic"


def test_missing_topic_fails_naming_it_then_the_same_key_still_publishes(
    adapter: Adapter,
) -> None:
    with pytest.raises(TransientError, match="no-such-topic"):
        adapter.publisher.publish(
            "no-such-topic", b"x", attributes={"a": "1"}, ordering_key="cus_1", timeout=5
        )
    # Same instance, same key, existing topic: nothing may be left paused.
    message_id = adapter.publisher.publish(
        adapter.events_topic, b"after", attributes={"a": "2"}, ordering_key="cus_1"
    )

    got = adapter.read(adapter.events_topic, 1)
    assert [(m.data, m.attributes, m.ordering_key, m.message_id) for m in got] == [
        (b"after", {"a": "2"}, "cus_1", message_id)
    ]


def test_failed_key_recovers_once_the_topic_exists(adapter: Adapter) -> None:
    with pytest.raises(TransientError, match="late-topic"):
        adapter.publisher.publish(
            "late-topic", b"x", attributes={}, ordering_key="cus_1", timeout=10
        )
    adapter.create_topic("late-topic")
    # Same publisher, same key: had the key stayed paused this would fail immediately.
    assert adapter.publisher.publish("late-topic", b"y", attributes={}, ordering_key="cus_1")


def test_data_and_attributes_pass_through_untouched(adapter: Adapter) -> None:
    binary = bytes(range(256)) * 4  # NULs, invalid UTF-8, every byte value
    attributes = {"é": "ü€😀", "empty": "", "json": '{"a": [1, "\\u0000"]}'}
    adapter.publisher.publish(
        adapter.events_topic, binary, attributes=attributes, ordering_key="cus_ü"
    )
    attributes["é"] = "changed after publish"  # the caller's dict is not kept
    # No data is allowed as long as there are attributes, even one with an empty value.
    adapter.publisher.publish(adapter.events_topic, b"", attributes={"only": ""})

    got = [(m.data, m.attributes, m.ordering_key) for m in adapter.read(adapter.events_topic, 2)]
    assert got == [
        (binary, {"é": "ü€😀", "empty": "", "json": '{"a": [1, "\\u0000"]}'}, "cus_ü"),
        (b"", {"only": ""}, ""),
    ]


def test_message_with_neither_data_nor_attributes_is_rejected(adapter: Adapter) -> None:
    with pytest.raises(TransientError, match=re.escape(adapter.events_topic)):
        adapter.publisher.publish(adapter.events_topic, b"", attributes={}, ordering_key="k")
    adapter.publisher.publish(adapter.events_topic, b"sentinel", attributes={}, ordering_key="k")

    # Nothing of the rejected message arrived; the key still works.
    assert [m.data for m in adapter.read(adapter.events_topic, 1)] == [b"sentinel"]
