"""The webhook handler called directly with Flask requests and an in-memory publisher.

Signature, tolerance and routing rules at unit level (freezegun pins the clock for the
tolerance edges); the same behaviour over HTTP against the Pub/Sub emulator is in
tests/integration/test_webhook_http.py.
"""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest
import stripe
from freezegun import freeze_time

from functions.config import WebhookSettings
from functions.entrypoints.webhook import WebhookHandler
from functions.stripe_events import InvalidEnvelope, parse_envelope, trace_context
from tests.support.fake_publisher import FakePublisher
from tests.support.logs import last_line
from tests.support.signing import encode, sign, stripe_event

OLD = "whsec_old" + "a" * 24
NEW = "whsec_new" + "b" * 24
NOW = 1_750_000_000
TOPIC = "stripe-events"


def settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "google_cloud_project": "unit",
        "stripe_webhook_secret": OLD,
        **overrides,
    }
    return WebhookSettings.model_validate(values)


APP = flask.Flask(__name__)


def call(
    handler: WebhookHandler,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    with APP.test_request_context("/", method=method, data=body, headers=headers or {}):
        response = handler(flask.request)
    return response.status_code, json.loads(response.get_data())


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def handler(publisher: FakePublisher) -> WebhookHandler:
    return WebhookHandler(settings(stripe_webhook_secret=f"{NEW},{OLD}"), publisher)


def signed(body: bytes, *secrets: str, t: int = NOW) -> dict[str, str]:
    return {"Stripe-Signature": sign(body, list(secrets), t)}


@freeze_time("2025-06-15 15:06:40")  # == NOW
def test_valid_event_is_published_unchanged_with_routing_attributes(
    handler: WebhookHandler, publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    event = stripe_event(customer="cus_A", object_id="sub_A", created=NOW - 5)
    body = encode(event)
    status, payload = call(handler, body, signed(body, OLD))
    assert (status, payload) == (200, {"received": True})
    [message] = publisher.messages
    assert message.topic == TOPIC
    assert message.data == body
    assert message.ordering_key == "cus_A"
    attrs = message.attributes
    assert attrs["event_id"] == event["id"]
    assert attrs["event_type"] == "customer.subscription.updated"
    assert attrs["created"] == str(NOW - 5)
    assert attrs["livemode"] == "false"
    assert attrs["api_version"] == "2025-03-31.basil"
    assert attrs["object_id"] == "sub_A"
    assert attrs["customer_id"] == "cus_A"
    assert len(attrs["trace_id"]) == 32
    assert attrs["traceparent"].split("-")[1] == attrs["trace_id"]
    line = last_line(capsys, "webhook_request")
    assert line["message"] == "webhook_request"
    assert line["outcome"] == "published"
    assert line["secret_index"] == 1  # OLD is the second configured secret
    assert line["event_id"] == event["id"]
    assert OLD not in json.dumps(line) and "v1=" not in json.dumps(line)


@freeze_time("2025-06-15 15:06:40")
def test_each_secret_in_rotation_verifies_and_both_signatures_in_one_header(
    handler: WebhookHandler, publisher: FakePublisher
) -> None:
    for secrets in ([OLD], [NEW], [NEW, OLD], ["whsec_unknown" + "c" * 20, NEW]):
        body = encode(stripe_event())
        assert call(handler, body, signed(body, *secrets))[0] == 200, secrets
    assert len(publisher.messages) == 4


@pytest.mark.parametrize(
    ("offset", "status", "reason"),
    [
        (-300, 200, None),
        (-301, 400, "stale_timestamp"),
        (300, 200, None),
        (301, 400, "future_timestamp"),
    ],
)
def test_tolerance_edges_in_both_directions(
    handler: WebhookHandler,
    publisher: FakePublisher,
    offset: int,
    status: int,
    reason: str | None,
) -> None:
    body = encode(stripe_event())
    headers = signed(body, NEW, t=NOW + offset)
    with freeze_time("2025-06-15 15:06:40"):
        code, payload = call(handler, body, headers)
    assert code == status
    assert payload.get("error") == reason
    assert len(publisher.messages) == (1 if status == 200 else 0)


def test_tolerance_is_configurable(publisher: FakePublisher) -> None:
    handler = WebhookHandler(settings(webhook_tolerance_seconds=10), publisher)
    body = encode(stripe_event())
    with freeze_time("2025-06-15 15:06:40"):
        assert call(handler, body, signed(body, OLD, t=NOW - 10))[0] == 200
        assert call(handler, body, signed(body, OLD, t=NOW - 11))[1] == {"error": "stale_timestamp"}


def _bad_requests() -> list[tuple[str, bytes, dict[str, str], int, str]]:
    body = encode(stripe_event())
    v1 = sign(body, [OLD], NOW).split(",")[1]
    not_json = b"not json"
    no_type = encode({k: v for k, v in stripe_event().items() if k != "type"})
    return [
        ("no header", body, {}, 400, "missing_signature"),
        ("empty header", body, {"Stripe-Signature": " "}, 400, "missing_signature"),
        ("no timestamp", body, {"Stripe-Signature": v1}, 400, "malformed_signature"),
        ("bad timestamp", body, {"Stripe-Signature": f"t=abc,{v1}"}, 400, "malformed_signature"),
        ("garbage", body, {"Stripe-Signature": "garbage"}, 400, "malformed_signature"),
        (
            "only v0",
            body,
            {"Stripe-Signature": sign(body, [OLD], NOW).replace("v1=", "v0=")},
            400,
            "malformed_signature",
        ),
        ("unknown secret", body, signed(body, "whsec_other" + "d" * 20), 400, "bad_signature"),
        ("tampered body", body + b" ", signed(body, OLD), 400, "bad_signature"),
        ("not json", not_json, signed(not_json, OLD), 400, "invalid_json"),
        ("no type", no_type, signed(no_type, OLD), 400, "invalid_envelope"),
    ]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "reason"),
    _bad_requests(),
    ids=[case[0] for case in _bad_requests()],
)
@freeze_time("2025-06-15 15:06:40")
def test_bad_input_is_rejected_and_nothing_published(
    handler: WebhookHandler,
    publisher: FakePublisher,
    capsys: pytest.CaptureFixture[str],
    name: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    code, payload = call(handler, body, headers)
    # An invalid envelope also names the field at fault (the first one pydantic reports).
    assert (code, {k: v for k, v in payload.items() if k != "field"}) == (status, {"error": reason})
    if name == "no type":
        assert payload["field"] == "type"
    assert publisher.messages == []
    line = last_line(capsys, "webhook_request")
    assert (line["outcome"], line["reason"], line["status_code"]) == ("rejected", reason, status)


@freeze_time("2025-06-15 15:06:40")
def test_v0_signature_next_to_a_valid_v1_is_ignored(
    handler: WebhookHandler, publisher: FakePublisher
) -> None:
    body = encode(stripe_event())
    header = sign(body, [OLD], NOW) + ",v0=" + "0" * 64
    assert call(handler, body, {"Stripe-Signature": header})[0] == 200
    assert len(publisher.messages) == 1


def test_only_post_is_allowed(handler: WebhookHandler, publisher: FakePublisher) -> None:
    for method in ("GET", "PUT", "DELETE"):
        assert call(handler, b"", method=method) == (405, {"error": "method_not_allowed"})
    assert publisher.messages == []


@freeze_time("2025-06-15 15:06:40")
def test_body_over_the_limit_is_413_before_verification(
    publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = WebhookHandler(settings(webhook_max_body_bytes=2048), publisher)
    small = encode(stripe_event(extra={"pad": "x" * 1500}))
    assert call(handler, small, signed(small, OLD))[0] == 200
    big = encode(stripe_event(extra={"pad": "x" * 2100}))
    # Correctly signed, still refused: size is checked first.
    assert call(handler, big, signed(big, OLD)) == (413, {"error": "too_large"})
    assert len(publisher.messages) == 1
    line = last_line(capsys, "webhook_request")
    assert line["outcome"] == "too_large"


@freeze_time("2025-06-15 15:06:40")
def test_livemode_mismatch_is_acknowledged_not_published(
    handler: WebhookHandler, publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    body = encode(stripe_event(livemode=True))
    status, payload = call(handler, body, signed(body, NEW))
    assert status == 200 and payload["ignored"] == "livemode_mismatch"
    assert publisher.messages == []
    line = last_line(capsys, "webhook_request")
    assert (line["outcome"], line["severity"]) == ("livemode_mismatch", "WARNING")


@freeze_time("2025-06-15 15:06:40")
def test_live_deployment_accepts_live_events_only(publisher: FakePublisher) -> None:
    handler = WebhookHandler(settings(stripe_livemode=True), publisher)
    live, test = encode(stripe_event(livemode=True)), encode(stripe_event(livemode=False))
    assert call(handler, live, signed(live, OLD))[0] == 200
    assert call(handler, test, signed(test, OLD))[0] == 200
    assert [m.attributes["livemode"] for m in publisher.messages] == ["true"]


@freeze_time("2025-06-15 15:06:40")
def test_publish_failure_is_503_so_stripe_retries(
    handler: WebhookHandler, publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher.failing_topics.add(TOPIC)
    body = encode(stripe_event())
    assert call(handler, body, signed(body, OLD)) == (503, {"error": "publish_failed"})
    line = last_line(capsys, "webhook_request")
    assert (line["outcome"], line["severity"], line["status_code"]) == (
        "publish_failed",
        "ERROR",
        503,
    )


@freeze_time("2025-06-15 15:06:40", tick=True)  # ticking: durations must not be zero
def test_publish_time_is_logged_apart_from_the_request_time(
    handler: WebhookHandler, publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    body = encode(stripe_event())
    assert call(handler, body, signed(body, OLD))[0] == 200
    ok = last_line(capsys, "webhook_request")
    publisher.failing_topics.add(TOPIC)
    assert call(handler, body, signed(body, OLD))[0] == 503
    failed = last_line(capsys, "webhook_request")
    for line in (ok, failed):
        assert 0 < line["publish_ms"] <= line["latency_ms"]


def test_envelope_parser_rejects_what_is_not_a_json_object() -> None:
    # Lone surrogates, deep nesting and over-long fields: tests/unit/test_webhook_hostile.py.
    for bad in (b"{", b"[1, 2]", b"\xff\xfe", b"", b'{"id": NaN}'):
        with pytest.raises(InvalidEnvelope) as info:
            parse_envelope(bad)
        assert info.value.code == "invalid_json"


def test_envelope_customer_from_reference_expanded_object_or_customer_event() -> None:
    plain = parse_envelope(encode(stripe_event(customer="cus_1")))
    expanded = parse_envelope(
        encode(stripe_event(customer=None, extra={"customer": {"id": "cus_2"}}))
    )
    customer_event = stripe_event("customer.updated", customer=None, object_id="cus_3")
    customer_event["data"]["object"]["object"] = "customer"
    none = parse_envelope(encode(stripe_event("invoice.created", customer=None)))
    assert plain.customer_id == "cus_1"
    assert expanded.customer_id == "cus_2"
    assert parse_envelope(encode(customer_event)).customer_id == "cus_3"
    assert none.customer_id is None
    assert "customer_id" not in none.attributes("t" * 32, "tp")


def test_event_without_customer_has_empty_ordering_key(publisher: FakePublisher) -> None:
    handler = WebhookHandler(settings(), publisher)
    body = encode(stripe_event("product.created", customer=None))
    with freeze_time("2025-06-15 15:06:40"):
        assert call(handler, body, signed(body, OLD))[0] == 200
    assert publisher.messages[0].ordering_key == ""


def test_trace_context_sources() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    w3c = f"00-{trace}-00f067aa0ba902b7-01"
    assert trace_context({"traceparent": w3c}) == (trace, w3c)
    cloud_id, cloud_parent = trace_context({"X-Cloud-Trace-Context": f"{trace}/123;o=1"})
    assert cloud_id == trace and cloud_parent.startswith(f"00-{trace}-")
    fresh_id, fresh_parent = trace_context({"traceparent": "garbage"})
    assert len(fresh_id) == 32 and fresh_id != trace
    assert fresh_parent.split("-")[1] == fresh_id


def test_signing_helper_matches_the_stripe_sdk() -> None:
    body = encode(stripe_event())
    header = sign(body, [OLD, NEW], 1_700_000_000)
    generated = stripe.WebhookSignature.generate_signature_header(
        body.decode(), OLD, timestamp=1_700_000_000
    )
    assert header.startswith(generated + ",v1=")
