"""The Stripe webhook: verify, publish the raw bytes to Pub/Sub, answer. Nothing else.

Stripe retries for three days when we do not answer 2xx, so this path only decides
"genuine and ours" and hands the bytes to Pub/Sub; all business logic runs in the
subscriber. No Firestore, no Stripe API calls, no `stripe.Event` construction (parsing a
large event into StripeObjects costs tens of milliseconds; the signature check alone
costs microseconds), only the few envelope fields needed for routing.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask
import orjson
import stripe

from functions.adapters.pubsub_publisher import Publisher, PubSubPublisher
from functions.config import WebhookSettings, webhook_settings
from functions.errors import TransientError
from functions.log import configure_logging, get_logger

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/|;|$)")


class Rejected(Exception):
    """A request we answer with a 4xx; `reason` is the short code logged and returned."""

    def __init__(self, status: int, reason: str, outcome: str = "rejected") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.outcome = outcome


@dataclass(frozen=True)
class Envelope:
    """The routing fields of a Stripe event; the rest of the body is never parsed here."""

    id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    object_id: str | None
    customer_id: str | None

    def attributes(self, trace_id: str, traceparent: str) -> dict[str, str]:
        attrs = {
            "event_id": self.id,
            "event_type": self.type,
            "created": str(self.created),
            "livemode": "true" if self.livemode else "false",
            "trace_id": trace_id,
            "traceparent": traceparent,
        }
        if self.api_version:
            attrs["api_version"] = self.api_version
        if self.object_id:
            attrs["object_id"] = self.object_id
        if self.customer_id:
            attrs["customer_id"] = self.customer_id
        return attrs


def _ref_id(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        ref = value.get("id")
        return ref if isinstance(ref, str) and ref else None
    return None


def _loads(body: bytes) -> Any:
    # orjson first: on a 60 KB event the standard parser was the largest cost of ours in
    # the bench's profile (~0.25 ms; orjson ~0.12). It is stricter on edge cases such as
    # lone surrogate escapes, which json accepts: those fall back rather than turn a
    # genuine, signed Stripe event into a 400 it would retry for days.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def parse_envelope(body: bytes) -> Envelope:
    try:
        doc = _loads(body)
    except ValueError:
        raise Rejected(400, "invalid_json") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_json")
    event_id, event_type, created = doc.get("id"), doc.get("type"), doc.get("created")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise Rejected(400, "invalid_envelope")
    if not event_type or isinstance(created, bool) or not isinstance(created, int):
        raise Rejected(400, "invalid_envelope")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = customer_id = None
    if isinstance(obj, dict):
        object_id = _ref_id(obj.get("id"))
        # A customer.* event's object is the customer itself.
        customer_id = object_id if obj.get("object") == "customer" else _ref_id(obj.get("customer"))
    api_version = doc.get("api_version")
    return Envelope(
        id=event_id,
        type=event_type,
        created=created,
        livemode=doc.get("livemode") is True,
        api_version=api_version if isinstance(api_version, str) else None,
        object_id=object_id,
        customer_id=customer_id,
    )


def _header_timestamp(header: str | None) -> int:
    """Structure checks before any HMAC, so a malformed header has its own reason."""
    if not header or not header.strip():
        raise Rejected(400, "missing_signature")
    timestamp: int | None = None
    has_v1 = False
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise Rejected(400, "malformed_signature")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise Rejected(400, "malformed_signature") from None
        elif key == "v1" and value:
            has_v1 = True
    # A header with only v0 (Stripe's fake test scheme) carries nothing we accept.
    if timestamp is None or not has_v1:
        raise Rejected(400, "malformed_signature")
    return timestamp


def verify(body: bytes, header: str | None, settings: WebhookSettings) -> int:
    """Returns the position of the configured secret that signed the body."""
    timestamp = _header_timestamp(header)
    # verify_header rejects old timestamps only; one from the future is rejected here.
    now = int(time.time())
    tolerance = settings.webhook_tolerance_seconds
    if timestamp > now + tolerance:
        raise Rejected(400, "future_timestamp")
    if timestamp < now - tolerance:
        raise Rejected(400, "stale_timestamp")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "bad_signature") from None
    for index, secret in enumerate(settings.stripe_webhook_secret):
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        return index
    raise Rejected(400, "bad_signature")


def trace_context(headers: Mapping[str, str] | Any) -> tuple[str, str]:
    """(trace_id, traceparent) from W3C traceparent or X-Cloud-Trace-Context, else new."""
    incoming = (headers.get("traceparent") or "").strip().lower()
    match = _TRACEPARENT.match(incoming)
    if match and match.group(1) != "0" * 32:
        return match.group(1), incoming
    match = _CLOUD_TRACE.match((headers.get("X-Cloud-Trace-Context") or "").strip().lower())
    trace_id = match.group(1) if match else secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _json(payload: dict[str, Any], status: int) -> flask.Response:
    return flask.Response(json.dumps(payload), status=status, mimetype="application/json")


def _read_body(request: flask.Request, limit: int) -> bytes:
    # Content-Length first (cheap); the bounded read also covers chunked bodies.
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, "too_large", "too_large")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise Rejected(413, "too_large", "too_large")
    return body


class WebhookHandler:
    def __init__(self, settings: WebhookSettings, publisher: Publisher) -> None:
        self._settings = settings
        self._publisher = publisher

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        trace_id, traceparent = trace_context(request.headers)
        log = get_logger(
            component="webhook", trace_id=trace_id, project=self._settings.google_cloud_project
        )
        fields: dict[str, Any] = {}
        try:
            status, outcome, payload = self._handle(request, trace_id, traceparent, fields)
        except Rejected as exc:
            status, outcome = exc.status, exc.outcome
            payload = {"error": exc.reason}
            fields["reason"] = exc.reason
        fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        level = "info"
        if outcome == "livemode_mismatch":
            level = "warning"
        elif outcome == "publish_failed":
            level = "error"
        getattr(log, level)("webhook_request", outcome=outcome, status_code=status, **fields)
        return _json(payload, status)

    def _handle(
        self,
        request: flask.Request,
        trace_id: str,
        traceparent: str,
        fields: dict[str, Any],
    ) -> tuple[int, str, dict[str, Any]]:
        if request.method != "POST":
            raise Rejected(405, "method_not_allowed", "method_not_allowed")
        body = _read_body(request, self._settings.webhook_max_body_bytes)
        fields["secret_index"] = verify(
            body, request.headers.get("Stripe-Signature"), self._settings
        )
        envelope = parse_envelope(body)
        fields.update(
            event_id=envelope.id, event_type=envelope.type, customer_id=envelope.customer_id
        )
        if envelope.livemode != self._settings.stripe_livemode:
            # Acknowledged so Stripe stops retrying: this deployment never serves that mode.
            fields["reason"] = "livemode_mismatch"
            return 200, "livemode_mismatch", {"received": True, "ignored": "livemode_mismatch"}
        publish_started = time.perf_counter()
        try:
            message_id = self._publisher.publish(
                self._settings.stripe_events_topic,
                body,
                attributes=envelope.attributes(trace_id, traceparent),
                ordering_key=envelope.customer_id or "",
                timeout=self._settings.webhook_publish_timeout_seconds,
            )
        except TransientError as exc:
            fields["reason"] = "publish_failed"
            fields["error"] = str(exc)
            # 5xx: Stripe retries the delivery, so nothing is lost while Pub/Sub is down.
            return 503, "publish_failed", {"error": "publish_failed"}
        finally:
            # Its own field: on-call can tell a slow Pub/Sub from a slow webhook at a glance.
            fields["publish_ms"] = round((time.perf_counter() - publish_started) * 1000, 3)
        fields["message_id"] = message_id
        return 200, "published", {"received": True}


_handler: WebhookHandler | None = None
_lock = threading.Lock()


def handler() -> WebhookHandler:
    """Built on the first request: settings validated, publisher client kept for life."""
    global _handler  # noqa: PLW0603 - one handler per process, built lazily
    if _handler is None:
        with _lock:
            if _handler is None:
                settings = webhook_settings()
                configure_logging(settings.log_level)
                _handler = WebhookHandler(settings, PubSubPublisher(settings.google_cloud_project))
    return _handler


def handle(request: flask.Request) -> flask.Response:
    return handler()(request)


def reset() -> None:
    """For tests that change the environment between cases."""
    global _handler  # noqa: PLW0603
    _handler = None
