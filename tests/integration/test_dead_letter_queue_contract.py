"""One behavioural suite, two dead-letter queues: the in-memory fake and
PubSubDeadLetterQueue on the emulator's ops subscription.

The replay and purge services are unit-tested against FakeDeadLetterQueue; this suite is
what keeps it honest. Each adapter comes with `put`, which lands a message on the
dead-letter topic (the fake's own method, or a publish to the emulator's topic), so every
test body is shared. Only the "pubsub" variant needs the emulators, so only it carries the
emulator marker: `-m "not emulator"` still checks the fake against the contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import pytest
from google.cloud.pubsub_v1 import PublisherClient

from functions.adapters.pubsub_dead_letters import PubSubDeadLetterQueue
from functions.config import CommonSettings
from functions.ports import DeadLetter, DeadLetterQueue
from functions.stripe_events import CUSTOMER_ID, EVENT_ID
from tests.conftest import ProvisionedProject
from tests.support.fake_dead_letters import FakeDeadLetterQueue

# Publish times come from the emulator's clock (same machine, millisecond stamps).
CLOCK_SLACK = 1.0


@dataclass
class Adapter:
    queue: DeadLetterQueue
    project: str
    subscription: str
    # put(data, attributes): a message lands on the dead-letter topic; returns its id.
    put: Callable[[bytes, Mapping[str, str]], str]
    # put_many: the same for many at once (without waiting for each in turn).
    put_many: Callable[[list[bytes]], list[str]]
    _closers: list[Callable[[], None]] = field(default_factory=list)


def fake_adapter() -> Adapter:
    settings = CommonSettings(google_cloud_project="contract-fake")
    fake = FakeDeadLetterQueue(settings.google_cloud_project, settings.dead_letter_subscription)

    def put_many(bodies: list[bytes]) -> list[str]:
        return [fake.put(body) for body in bodies]

    return Adapter(
        queue=fake,
        project=settings.google_cloud_project,
        subscription=settings.dead_letter_subscription,
        put=fake.put,
        put_many=put_many,
    )


def pubsub_adapter(project: ProvisionedProject) -> Adapter:
    settings = CommonSettings(google_cloud_project=project.project)
    publisher = PublisherClient()
    topic = publisher.topic_path(project.project, settings.dead_letter_topic)

    def put(data: bytes, attributes: Mapping[str, str]) -> str:
        return str(publisher.publish(topic, data, **attributes).result(timeout=30))

    def put_many(bodies: list[bytes]) -> list[str]:
        futures = [publisher.publish(topic, body) for body in bodies]
        return [str(f.result(timeout=30)) for f in futures]

    return Adapter(
        queue=PubSubDeadLetterQueue(project.project, settings.dead_letter_subscription),
        project=project.project,
        subscription=settings.dead_letter_subscription,
        put=put,
        put_many=put_many,
        _closers=[publisher.transport.close],
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


def ids(messages: list[DeadLetter]) -> list[str]:
    return [m.message_id for m in messages]


def test_path_names_the_ops_subscription(adapter: Adapter) -> None:
    assert adapter.queue.path == f"projects/{adapter.project}/subscriptions/{adapter.subscription}"


def test_an_empty_queue_leases_nothing_and_acks_or_releases_nothing(adapter: Adapter) -> None:
    assert adapter.queue.lease_all() == []
    adapter.queue.ack([])
    adapter.queue.release([])
    assert adapter.queue.lease_all() == []


def test_lease_all_returns_everything_queued_intact_oldest_first(adapter: Adapter) -> None:
    sent = [
        (b'{"id": "evt_1"}', {EVENT_ID: "evt_1", CUSTOMER_ID: "cus_1"}),
        (bytes(range(256)), {"é": "ü€😀", "empty": ""}),  # undecodable bodies land here too
        (b"third", {}),
    ]
    before = time.time()
    message_ids = [adapter.put(data, attributes) for data, attributes in sent]
    after = time.time()

    leased = adapter.queue.lease_all()

    assert ids(leased) == message_ids
    assert [(m.data, dict(m.attributes)) for m in leased] == sent
    assert all(m.ack_id for m in leased) and len({m.ack_id for m in leased}) == 3
    assert all(m.extra_ack_ids == () for m in leased)
    stamps = [m.published_at for m in leased]
    assert stamps == sorted(stamps)
    assert before - CLOCK_SLACK <= stamps[0] and stamps[-1] <= after + CLOCK_SLACK
    assert (leased[0].event_id, leased[0].customer_id) == ("evt_1", "cus_1")
    adapter.queue.release(leased)


def test_leased_messages_are_hidden_until_released_then_leased_anew(adapter: Adapter) -> None:
    message_ids = [adapter.put(f"m{n}".encode(), {"n": str(n)}) for n in range(3)]
    first = adapter.queue.lease_all()
    assert ids(first) == message_ids

    # Held by the first reader: nobody else sees them (a second `dlq list` shows nothing
    # rather than a message someone is replaying).
    assert adapter.queue.lease_all() == []

    adapter.queue.release(first)
    second = adapter.queue.lease_all()
    assert ids(second) == message_ids
    assert [(m.data, m.attributes, m.published_at) for m in second] == [
        (m.data, m.attributes, m.published_at) for m in first
    ]
    # A new delivery, a new ack id: the old lease is over.
    assert not {m.ack_id for m in first} & {m.ack_id for m in second}
    adapter.queue.release(second)


def test_ack_removes_only_the_acked_and_acking_twice_is_harmless(adapter: Adapter) -> None:
    message_ids = [adapter.put(f"m{n}".encode(), {}) for n in range(3)]
    leased = adapter.queue.lease_all()
    done, kept = [leased[0], leased[2]], [leased[1]]

    adapter.queue.ack(done)
    adapter.queue.ack(done)
    adapter.queue.release(kept)

    again = adapter.queue.lease_all()
    assert ids(again) == [message_ids[1]]
    adapter.queue.ack(again)
    assert adapter.queue.lease_all() == []


def test_an_ack_for_a_released_lease_removes_nothing(adapter: Adapter) -> None:
    # Released means handed to the next reader: a late ack of the old lease must not
    # consume a message that someone else may now be working on.
    message_id = adapter.put(b"m", {})
    stale = adapter.queue.lease_all()
    adapter.queue.release(stale)

    adapter.queue.ack(stale)

    current = adapter.queue.lease_all()
    assert ids(current) == [message_id]
    adapter.queue.release(current)


def test_ack_and_release_cover_every_ack_id_a_dead_letter_carries(adapter: Adapter) -> None:
    # A message Pub/Sub delivered twice comes back as one DeadLetter carrying both ack ids.
    first_id, second_id, other_id = (adapter.put(b, {}) for b in (b"a", b"b", b"c"))
    a, b, c = adapter.queue.lease_all()

    def merged(x: DeadLetter, y: DeadLetter) -> DeadLetter:
        return DeadLetter(x.ack_id, x.message_id, x.data, x.attributes, x.published_at, (y.ack_id,))

    adapter.queue.release([merged(a, b)])
    released = adapter.queue.lease_all()
    assert ids(released) == [first_id, second_id]

    adapter.queue.ack([merged(*released)])
    adapter.queue.release([c])
    assert ids(adapter.queue.lease_all()) == [other_id]


def test_limit_leases_at_most_that_many_and_leaves_the_rest(adapter: Adapter) -> None:
    message_ids = adapter.put_many([f"m{n}".encode() for n in range(5)])
    assert adapter.queue.lease_all(limit=0) == []

    some = adapter.queue.lease_all(limit=2)
    rest = adapter.queue.lease_all()

    assert len(some) == 2 and len(rest) == 3
    assert sorted(ids(some) + ids(rest)) == sorted(message_ids)
    adapter.queue.release(some + rest)


def test_lease_all_reads_past_one_pull(adapter: Adapter) -> None:
    # More than the adapter pulls in one request (100): the whole queue comes back.
    message_ids = adapter.put_many([f"m{n}".encode() for n in range(130)])

    leased = adapter.queue.lease_all()

    assert sorted(ids(leased)) == sorted(message_ids)
    assert len({m.ack_id for m in leased}) == 130
    adapter.queue.ack(leased)
    assert adapter.queue.lease_all() == []
