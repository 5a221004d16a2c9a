"""How the subscriber routes failures (pure logic on fakes; the emulator suite covers I/O)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest

from functions.errors import TransientError
from functions.repository import ApplyResult, DecideFn, Operation
from functions.subscriber import IncomingMessage, Subscriber
from statemachine.decision import Policy
from tests.support.fake_repository import FakeRepository

DLQ = "dead-letters"


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes, dict[str, str], str]] = []

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        if self.fail:
            raise TransientError("publish failed")
        self.sent.append((topic, data, dict(attributes), ordering_key))
        return str(len(self.sent))


class UnavailableRepository(FakeRepository):
    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        raise TransientError("firestore unavailable")


def make(repo: FakeRepository, publisher: RecordingPublisher) -> Subscriber:
    return Subscriber(
        repo,
        publisher,
        project="p",
        entitlements_topic="ents",
        dead_letter_topic=DLQ,
        policy=Policy(),
        marker_ttl_days=35,
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
    repo, pub = FakeRepository(), RecordingPublisher()
    outcome = make(repo, pub).handle(
        IncomingMessage(data=b"{not json", attributes={"event_id": "evt_x"}, message_id="m1")
    )
    assert outcome.decision == "dead_lettered"
    [(topic, data, attrs, _)] = pub.sent
    assert topic == DLQ and data == b"{not json"
    assert attrs["dead_letter_reason_code"] == "invalid_payload"
    assert attrs["event_id"] == "evt_x"  # original attributes are kept for replay
    failure = repo.get_failure("msg-m1")
    assert (
        failure is not None and failure.dead_lettered and failure.reason_code == "invalid_payload"
    )


def test_envelope_missing_fields_is_permanent() -> None:
    repo, pub = FakeRepository(), RecordingPublisher()
    body = json.dumps({"id": "evt_1", "object": "event"}).encode()
    outcome = make(repo, pub).handle(IncomingMessage(data=body, message_id="m2"))
    assert outcome.decision == "dead_lettered"
    failure = repo.get_failure("msg-m2")
    assert failure is not None and "type" in failure.reason


def test_dead_letter_publish_failure_is_raised_for_redelivery() -> None:
    repo, pub = FakeRepository(), RecordingPublisher(fail=True)
    with pytest.raises(TransientError):
        make(repo, pub).handle(IncomingMessage(data=b"garbage", message_id="m3"))
    assert repo.failures["msg-m3"].reason_code == "transient"


def test_unavailable_store_raises_transient_and_records_nothing_lost() -> None:
    repo, pub = UnavailableRepository(), RecordingPublisher()
    with pytest.raises(TransientError, match="unavailable"):
        make(repo, pub).handle(IncomingMessage(data=event(customer="cus_1"), message_id="m4"))
    assert repo.failures["evt_1"].attempts == 1
    assert pub.sent == []


def test_event_type_that_is_not_ours_only_writes_the_marker() -> None:
    repo, pub = FakeRepository(), RecordingPublisher()
    subscriber = make(repo, pub)
    assert subscriber.handle(IncomingMessage(data=event())).decision == "ignored"
    assert subscriber.handle(IncomingMessage(data=event())).decision == "duplicate"
    assert repo.is_processed("evt_1") and repo.records == {} and pub.sent == []


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
