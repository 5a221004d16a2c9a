"""How the subscriber routes failures (pure logic on fakes; the emulator suite covers I/O)."""

from __future__ import annotations

import base64
import json

import pytest

from functions.errors import TransientError
from functions.ports import ApplyResult, DecideFn, Operation
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from statemachine.decision import Policy
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository

DLQ = "dead-letters"


class UnavailableRepository(FakeRepository):
    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        raise TransientError("firestore unavailable")


def failing_publisher() -> FakePublisher:
    publisher = FakePublisher()
    publisher.failing_topics.add(DLQ)
    return publisher


def make(repo_: FakeRepository, pub: FakePublisher) -> Subscriber:
    return Subscriber(
        Applier(repo_, OutboxRelay(repo_, pub, "ents"), marker_ttl_days=35),
        pub,
        project="p",
        dead_letter_topic=DLQ,
        policy=Policy(),
    )


def event(event_type: str = "product.created", customer: str | None = None) -> bytes:
    obj: dict[str, object] = {"id": "prod_1", "object": "product"}
    if customer:
        obj = {"id": "cus_1", "object": "customer"}
    return json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": event_type,
            "created": 1_700_000_000,
            "livemode": False,
            "data": {"object": obj},
        }
    ).encode()


def test_invalid_json_is_dead_lettered_with_reason_and_acknowledged() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    outcome = make(repo, pub).handle(
        IncomingMessage(data=b"{not json", attributes={"event_id": "evt_x"}, message_id="m1")
    )
    assert outcome.decision == "dead_lettered"
    [dead] = pub.messages
    assert dead.topic == DLQ and dead.data == b"{not json"
    assert dead.attributes["dead_letter_reason_code"] == "invalid_payload"
    assert dead.attributes["event_id"] == "evt_x"  # original attributes are kept for replay
    failure = repo.get_failure("msg-m1")
    assert (
        failure is not None and failure.dead_lettered and failure.reason_code == "invalid_payload"
    )


def test_envelope_missing_fields_is_permanent() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    body = json.dumps({"id": "evt_1", "object": "event"}).encode()
    outcome = make(repo, pub).handle(IncomingMessage(data=body, message_id="m2"))
    assert outcome.decision == "dead_lettered"
    failure = repo.get_failure("msg-m2")
    assert failure is not None and "type" in failure.reason


def test_dead_letter_publish_failure_is_raised_for_redelivery() -> None:
    repo, pub = FakeRepository(), failing_publisher()
    with pytest.raises(TransientError):
        make(repo, pub).handle(IncomingMessage(data=b"garbage", message_id="m3"))
    assert repo.failures["msg-m3"].reason_code == "transient"


def test_unavailable_store_raises_transient_and_records_nothing_lost() -> None:
    repo, pub = UnavailableRepository(), FakePublisher()
    with pytest.raises(TransientError, match="unavailable"):
        make(repo, pub).handle(IncomingMessage(data=event(customer="cus_1"), message_id="m4"))
    assert repo.failures["evt_1"].attempts == 1
    assert pub.messages == []


def test_event_type_that_is_not_ours_only_writes_the_marker() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    subscriber = make(repo, pub)
    assert subscriber.handle(IncomingMessage(data=event())).decision == "ignored"
    assert subscriber.handle(IncomingMessage(data=event())).decision == "duplicate"
    assert repo.is_processed("evt_1") and repo.records == {} and pub.messages == []


def test_push_envelope_decoding() -> None:
    body = {
        "message": {
            "data": base64.b64encode(b"hello").decode(),
            "attributes": {"event_id": "evt_1"},
            "messageId": "42",
        },
        "deliveryAttempt": 3,
        "subscription": "projects/p/subscriptions/s",
    }
    message = IncomingMessage.from_push(body)
    assert (message.data, message.message_id, message.delivery_attempt) == (b"hello", "42", 3)
    assert message.attributes == {"event_id": "evt_1"}


def test_dead_letter_reason_attribute_fits_pub_subs_value_limit() -> None:
    # Invalid metadata whose keys are 3-byte characters: the validation error names them,
    # so the 500-character reason is ~1,500 bytes, over Pub/Sub's 1,024 per attribute.
    metadata = {"€" * 300 + str(n): n for n in range(3)}
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": 1_700_000_000,
            "livemode": False,
            "data": {
                "object": {
                    "id": "sub_1",
                    "object": "subscription",
                    "customer": "cus_1",
                    "status": "active",
                    "metadata": metadata,
                }
            },
        }
    ).encode()
    repo, pub = FakeRepository(), FakePublisher()
    assert make(repo, pub).handle(IncomingMessage(data=body, message_id="m")).decision == (
        "dead_lettered"
    )
    [dead] = pub.messages
    reason = dead.attributes["dead_letter_reason"]
    failure = repo.get_failure("evt_1")
    assert failure is not None and len(failure.reason.encode()) > 1024  # kept whole here
    assert 1000 < len(reason.encode()) <= 1024
    assert failure.reason.startswith(reason)
