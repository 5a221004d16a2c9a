"""Issue 17 row 13 (logic on fakes): at the last attempt we allow, one below the
subscription's dead-letter policy, a transient failure is dead-lettered by the subscriber
itself with its reason and acknowledged; Pub/Sub's policy remains the backstop."""

from __future__ import annotations

import json

import pytest

from functions import stripe_events as events
from functions.entrypoints.pubsub import DeliveryCounter
from functions.errors import TransientError
from functions.ports import ApplyResult, DecideFn, Operation
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from statemachine.decision import Policy
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository

DLQ = "dead-letters"
EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "customer.subscription.updated",
    "created": 1_700_000_000,
    "livemode": False,
    "data": {"object": {"id": "cus_1", "object": "customer"}},
}


class UnavailableRepository(FakeRepository):
    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        raise TransientError("firestore unavailable")


class NoFailureRecords(UnavailableRepository):
    def record_failure(self, failure: object) -> object:
        raise TransientError("firestore unavailable")


def make(repo: FakeRepository, pub: FakePublisher, attempts: int | None = 5) -> Subscriber:
    return Subscriber(
        Applier(repo, OutboxRelay(repo, pub, "ents"), marker_ttl_days=35),
        pub,
        project="p",
        dead_letter_topic=DLQ,
        policy=Policy(),
        max_delivery_attempts=attempts,
    )


def delivery(attempt: int | None) -> IncomingMessage:
    data = json.dumps(EVENT).encode()
    return IncomingMessage(data=data, message_id="m1", delivery_attempt=attempt)


def test_attempts_before_the_last_raise_for_redelivery_and_the_last_is_dead_lettered() -> None:
    repo, pub = UnavailableRepository(), FakePublisher()
    subscriber = make(repo, pub, attempts=5)
    for attempt in (1, 2, 3):
        with pytest.raises(TransientError):
            subscriber.handle(delivery(attempt))
    assert pub.on(DLQ) == []

    outcome = subscriber.handle(delivery(4))  # returns: the push is acknowledged

    assert outcome.decision == "dead_lettered"
    [dead] = pub.on(DLQ)
    assert dead.attributes[events.DEAD_LETTER_REASON_CODE] == "retries_exhausted"
    assert dead.attributes[events.DEAD_LETTERED_BY] == "subscriber"
    assert "gave up after 4 attempts" in dead.attributes[events.DEAD_LETTER_REASON]
    assert "firestore unavailable" in dead.attributes[events.DEAD_LETTER_REASON]
    failure = repo.get_failure("evt_1")
    assert failure is not None and failure.dead_lettered
    assert failure.reason_code == "retries_exhausted"


def test_the_explicit_limit_follows_the_configured_policy() -> None:
    subscriber = make(UnavailableRepository(), FakePublisher(), attempts=10)
    for attempt in range(1, 9):
        with pytest.raises(TransientError):
            subscriber.handle(delivery(attempt))
    assert subscriber.handle(delivery(9)).decision == "dead_lettered"


def test_without_a_count_or_a_policy_pub_sub_decides() -> None:
    pub = FakePublisher()
    with pytest.raises(TransientError):
        make(UnavailableRepository(), pub, attempts=5).handle(delivery(None))
    with pytest.raises(TransientError):
        make(UnavailableRepository(), pub, attempts=None).handle(delivery(99))
    assert pub.on(DLQ) == []


def test_a_failed_dead_letter_publish_is_left_to_pub_subs_policy() -> None:
    pub = FakePublisher()
    pub.failing_topics.add(DLQ)
    with pytest.raises(TransientError):
        make(UnavailableRepository(), pub).handle(delivery(4))


def test_an_unwritable_failure_record_does_not_publish_the_dead_letter_twice() -> None:
    pub = FakePublisher()
    outcome = make(NoFailureRecords(), pub).handle(delivery(4))
    assert outcome.decision == "dead_lettered"
    assert len(pub.on(DLQ)) == 1


def test_the_local_delivery_counter_counts_per_message_and_forgets_acked_ones() -> None:
    counter = DeliveryCounter(capacity=2)
    assert [counter.note("a") for _ in range(3)] == [1, 2, 3]
    assert counter.note("b") == 1
    counter.forget("a")
    assert counter.note("a") == 1
    counter.note("c")  # over capacity: the oldest ("b") goes, counting low, never high
    assert counter.note("b") == 1
