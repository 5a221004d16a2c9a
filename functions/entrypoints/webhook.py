"""The Stripe webhook: verify, publish the raw bytes to Pub/Sub, answer. Nothing else.

Stripe retries for three days when we do not answer 2xx, so this path only decides
"genuine and ours" and hands the bytes to Pub/Sub; all business logic runs in the
subscriber. No Firestore, no Stripe API calls, no `stripe.Event` construction (parsing a
large event into StripeObjects costs tens of milliseconds; the signature check alone
costs microseconds). The envelope is read by the subscriber's own parser
(`stripe_events.parse_message`): what it refuses is a 400 here, never acknowledged to
Stripe as accepted and then dead-lettered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any

import flask
import stripe
from werkzeug.exceptions import ClientDisconnected

from functions.config import WebhookSettings
from functions.errors import TransientError
from functions.log import get_logger
from functions.ports import Publisher
from functions.stripe_events import InvalidEnvelope, parse_envelope, trace_context


class Rejected(Exception):
    """A request we answer with a 4xx; `reason` is the short code logged and returned."""

    def __init__(
        self, status: int, reason: str, outcome: str = "rejected", *, field: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.outcome = outcome
        self.field = field


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


def _json(payload: dict[str, Any], status: int) -> flask.Response:
    return flask.Response(json.dumps(payload), status=status, mimetype="application/json")


class _BoundedInput:
    """A WSGI input that yields at most `budget` bytes in all, then end of stream.

    functions-framework's after_request hook calls `request.get_data()` once we have
    answered, to drain the body: on an unbounded input that buffered a 30 MB body in the
    worker (or waited forever for bytes a sender declared and never sent). With this in
    place of `wsgi.input` nobody in the process reads more than the budget; gunicorn then
    discards at most 64 KB of what is left, for at most 5 s, and closes the connection.
    """

    def __init__(self, inner: IO[bytes], budget: int) -> None:
        self._inner = inner
        self._budget = budget

    def _take(self, size: int | None) -> int:
        return self._budget if size is None or size < 0 else min(size, self._budget)

    def read(self, size: int | None = -1) -> bytes:
        return self._through(self._inner.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._through(self._inner.readline, size)

    def _through(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        want = self._take(size)
        if want <= 0:
            return b""
        try:
            data = read(want)
        except Exception:
            # A read that failed (deadline passed, sender gone) ends the stream: the
            # framework's drain after our answer must not fail the request again.
            self._budget = 0
            raise
        self._budget -= len(data)
        return data


def _read_body(request: flask.Request, limit: int) -> bytes:
    """At most limit+1 bytes off the stream; 413 from Content-Length before any read."""
    declared = request.content_length
    too_large = declared is not None and declared > limit
    environ = request.environ
    # Must happen before anything touches request.stream (werkzeug builds it once).
    environ["wsgi.input"] = _BoundedInput(environ["wsgi.input"], 0 if too_large else limit + 1)
    if too_large:
        raise Rejected(413, "too_large", "too_large")
    try:
        # Chunked bodies have no Content-Length: the bounded read is their limit.
        body = request.stream.read(limit + 1)
    except TimeoutError:
        # The server's per-request read deadline (infra/local/serve.py locally, Cloud Run's
        # request timeout in production) cut off a sender that was too slow.
        raise Rejected(408, "body_timeout", "body_timeout") from None
    except (OSError, ClientDisconnected):
        raise Rejected(400, "body_incomplete", "body_incomplete") from None
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
            if exc.field:
                payload["field"] = fields["field"] = exc.field
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
        try:
            envelope = parse_envelope(body)
        except InvalidEnvelope as exc:
            # Every parser failure, a 10,000-level nesting included, is an InvalidEnvelope.
            raise Rejected(400, exc.code, field=exc.field) from None
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
                ordering_key=envelope.ordering_key,
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


def handle(request: flask.Request) -> flask.Response:
    # The handler is built on the first request (settings validated, publisher kept).
    from functions import composition  # noqa: PLC0415 - the root imports this module

    return composition.webhook_handler()(request)
