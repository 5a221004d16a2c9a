"""Issue 17, rows 4, 5 and 11 at unit level: hostile but correctly signed bodies.

The webhook and the subscriber read a body with one parser (`stripe_events.parse_event`),
so whatever the webhook acknowledges to Stripe the subscriber can read, and whatever the
subscriber could never read the webhook refuses with a 400 and a request log line.
"""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest
from freezegun import freeze_time

from functions import stripe_events
from functions.config import WebhookSettings
from functions.entrypoints.webhook import WebhookHandler
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from statemachine.decision import Policy
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository
from tests.support.logs import last_line
from tests.support.signing import encode, sign, stripe_event

SECRET = "whsec_hostile" + "h" * 20
NOW = 1_750_000_000
FROZEN = "2025-06-15 15:06:40"  # == NOW
APP = flask.Flask(__name__)
DLQ = "dead-letters"


def webhook(publisher: FakePublisher) -> WebhookHandler:
    settings = WebhookSettings.model_validate(
        {"google_cloud_project": "unit", "stripe_webhook_secret": SECRET}
    )
    return WebhookHandler(settings, publisher)


def post(handler: WebhookHandler, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Stripe-Signature": sign(body, [SECRET], NOW)}
    with APP.test_request_context("/", method="POST", data=body, headers=headers):
        response = handler(flask.request)
    return response.status_code, json.loads(response.get_data())


def subscriber(publisher: FakePublisher) -> Subscriber:
    repo = FakeRepository()
    return Subscriber(
        Applier(repo, OutboxRelay(repo, publisher, "ents"), marker_ttl_days=35),
        publisher,
        project="p",
        dead_letter_topic=DLQ,
        policy=Policy(),
    )


def with_description(raw: bytes, customer: str = "cus_hostile") -> bytes:
    """A product event (the subscriber ignores it) whose description is `raw` JSON."""
    event = stripe_event("product.updated", customer=customer, object_id="prod_1")
    event["data"]["object"]["description"] = "PLACEHOLDER"
    return encode(event).replace(b'"PLACEHOLDER"', raw)


def nested(depth: int) -> bytes:
    return with_description(b"[" * depth + b"]" * depth)


@freeze_time(FROZEN)
def test_row4_a_body_nested_10000_levels_is_400_with_a_request_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    publisher = FakePublisher()
    assert post(webhook(publisher), nested(10_000)) == (400, {"error": "invalid_json"})
    assert publisher.messages == []
    line = last_line(capsys, "webhook_request")
    assert (line["status_code"], line["reason"]) == (400, "invalid_json")


def test_row4_the_parser_turns_every_depth_into_invalid_envelope_not_recursion_error() -> None:
    for depth in (1_100, 5_000, 10_000, 100_000):
        with pytest.raises(stripe_events.InvalidEnvelope) as info:
            stripe_events.parse_event(nested(depth))
        assert info.value.code == "invalid_json", depth
    # Depth alone is no fault: Stripe objects nest a few levels, and so may a field.
    assert stripe_events.parse_event(nested(50)).id.startswith("evt_")


def test_row4_the_subscriber_dead_letters_deep_nesting_with_a_reason() -> None:
    publisher = FakePublisher()
    outcome = subscriber(publisher).handle(IncomingMessage(data=nested(10_000), message_id="m4"))
    assert outcome.decision == "dead_lettered"
    [dead] = publisher.messages
    assert dead.attributes["dead_letter_reason_code"] == "invalid_payload"
    assert "depth" in dead.attributes["dead_letter_reason"]


# Bodies the two sides must judge alike: (name, raw JSON of one field, readable?).
STRICTNESS = [
    ("lone high surrogate", b'"\\ud800"', False),
    ("lone low surrogate", b'"x\\udfff"', False),
    ("surrogate pair", b'"\\ud83d\\ude00"', True),
    ("NaN", b"NaN", False),
    ("Infinity", b"-Infinity", False),
    ("integer beyond a double", b"1" + b"0" * 400, False),
    ("nested 100", b"[" * 100 + b"]" * 100, True),
    ("nested 2000", b"[" * 2000 + b"]" * 2000, False),
    ("escaped NUL", b'"a\\u0000b"', True),
    ("plain text", b'"Dataface Team"', True),
]


@pytest.mark.parametrize(
    ("name", "raw", "readable"), STRICTNESS, ids=[case[0] for case in STRICTNESS]
)
@freeze_time(FROZEN)
def test_row5_webhook_and_subscriber_judge_each_body_alike(
    name: str, raw: bytes, readable: bool
) -> None:
    body = with_description(raw)
    hooked = FakePublisher()
    status, payload = post(webhook(hooked), body)
    outcome = subscriber(FakePublisher()).handle(IncomingMessage(data=body, message_id="m5"))
    if readable:
        assert (status, len(hooked.messages)) == (200, 1), payload
        assert outcome.decision == "ignored"  # a product event: read, and nothing to do
    else:
        # Refused before Stripe is told "accepted", so no unreadable message is ever acked.
        assert (status, payload, hooked.messages) == (400, {"error": "invalid_json"}, [])
        assert outcome.decision == "dead_lettered"


@freeze_time(FROZEN)
def test_row5_both_sides_call_the_one_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bytes]] = []
    real = stripe_events.parse_message

    def spy(body: bytes) -> Any:
        seen.append(("parse_message", body))
        return real(body)

    monkeypatch.setattr(stripe_events, "parse_message", spy)
    body = with_description(b'"\\ud800"')
    assert post(webhook(FakePublisher()), body)[0] == 400
    subscriber(FakePublisher()).handle(IncomingMessage(data=body, message_id="m5b"))
    assert seen == [("parse_message", body), ("parse_message", body)]


TOO_LONG = "x" * 1025


def _long(field: str) -> bytes:
    event = stripe_event(customer="cus_ok", object_id="sub_ok")
    if field == "customer_id":
        event["data"]["object"]["customer"] = "cus_" + TOO_LONG
    elif field == "event_id":
        event["id"] = "evt_" + TOO_LONG
    elif field == "event_type":
        event["type"] = "customer.subscription." + TOO_LONG
    elif field == "object_id":
        event["data"]["object"]["id"] = "sub_" + TOO_LONG
    else:
        event["api_version"] = TOO_LONG
    return encode(event)


ROUTING_FIELDS = ["customer_id", "event_id", "event_type", "object_id", "api_version"]


@pytest.mark.parametrize("field", ROUTING_FIELDS)
@freeze_time(FROZEN)
def test_row11_a_routing_field_over_pubsubs_limit_is_400_naming_it(
    field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher = FakePublisher()
    status, payload = post(webhook(publisher), _long(field))
    # Event ids have a rule of their own (schemas/ids.py, 255 characters), stricter than
    # Pub/Sub's: the envelope refuses them first, still naming the field.
    reason, named = ("invalid_envelope", "id") if field == "event_id" else ("field_too_long", field)
    assert (status, payload) == (400, {"error": reason, "field": named})
    assert publisher.messages == []
    line = last_line(capsys, "webhook_request")
    assert (line["reason"], line["field"]) == (reason, named)


def test_row11_the_limit_is_bytes_and_exactly_1024_fits() -> None:
    fits = stripe_event(customer="c" * 1024)
    assert stripe_events.parse_envelope(encode(fits)).customer_id == "c" * 1024
    # 342 three-byte characters are 1,026 bytes: over, though only 342 characters.
    wide = stripe_event(customer="€" * 342)
    with pytest.raises(stripe_events.InvalidEnvelope) as info:
        stripe_events.parse_envelope(json.dumps(wide).encode())
    assert (info.value.code, info.value.field) == ("field_too_long", "customer_id")


def test_row11_the_subscriber_dead_letters_an_over_long_customer_at_once() -> None:
    publisher = FakePublisher()
    outcome = subscriber(publisher).handle(
        IncomingMessage(data=_long("customer_id"), message_id="m11")
    )
    assert outcome.decision == "dead_lettered"
    [dead] = publisher.messages
    assert dead.topic == DLQ
    assert "customer_id is over 1024 bytes" in dead.attributes["dead_letter_reason"]
