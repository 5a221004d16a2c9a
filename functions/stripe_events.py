"""The stripe-events message: what travels on the topic between the webhook and us.

Data is the Stripe event's bytes exactly as Stripe signed them (or, for catch-up, as its
API returned them). Attributes carry the routing fields read from the envelope, so the
subscriber, the dead-letter queue and replay can route without parsing the body, plus
markers of how the message arrived. The ordering key is the Stripe customer id.

Every module that reads or writes such a message (webhook, subscriber, dead-letter
queue, catch-up, replay) uses the names and parsers here, so they cannot disagree.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import orjson
import pydantic

from functions.errors import InvalidPayload
from schemas.stripe import StripeEvent
from schemas.thin_events import THIN_EVENT_OBJECT, ThinEventNotification

# Routing attributes, set by whoever first puts the event on the topic.
EVENT_ID: Final = "event_id"
EVENT_TYPE: Final = "event_type"
CREATED: Final = "created"
LIVEMODE: Final = "livemode"
API_VERSION: Final = "api_version"
OBJECT_ID: Final = "object_id"
CUSTOMER_ID: Final = "customer_id"
TRACE_ID: Final = "trace_id"
TRACEPARENT: Final = "traceparent"
# How it arrived, when not from the webhook: the value is "true".
REPLAY: Final = "replay"
CATCH_UP: Final = "catch_up"
# Stamped by whoever parks a message on the dead-letter topic; dropped again on replay.
DEAD_LETTER_REASON_CODE: Final = "dead_letter_reason_code"
DEAD_LETTER_REASON: Final = "dead_letter_reason"
DEAD_LETTERED_AT: Final = "dead_lettered_at"
DEAD_LETTERED_BY: Final = "dead_lettered_by"
FAILURE_KEY: Final = "failure_key"
# Added by Pub/Sub's dead-letter policy when it forwards after max attempts.
SOURCE_DELIVERY_COUNT: Final = "CloudPubSubDeadLetterSourceDeliveryCount"
DEAD_LETTER_PREFIXES: Final = ("dead_letter", "dead_lettered", "CloudPubSubDeadLetter")

# Pub/Sub refuses a publish whose ordering key or any attribute value is over 1,024 bytes
# (cloud.google.com/pubsub/quotas, resource limits): a body whose routing fields do not fit
# can never be put on the topic, so it is refused as a bad envelope, naming the field.
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1024
MAX_ORDERING_KEY_BYTES: Final = 1024

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/|;|$)")


class InvalidEnvelope(InvalidPayload):
    """The bytes are not a Stripe event envelope; `code` is the short reason.

    `field` names the one envelope field at fault when there is one (the webhook returns
    it to the sender).
    """

    def __init__(self, code: str, detail: str = "", *, field: str | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Envelope:
    """The routing fields of a Stripe event, as the message attributes carry them."""

    id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    object_id: str | None
    customer_id: str | None
    thin: bool = False

    @property
    def ordering_key(self) -> str:
        """The customer id; for a thin notification, which names no customer, the related
        object's id. Thin events need no order (the subscriber reads the object's current
        state), but one key per object keeps a burst for one object on one delivery
        sequence, so the subscriber's per-object coalescing sees them one after another."""
        if self.customer_id:
            return self.customer_id
        return (self.object_id or "") if self.thin else ""

    def attributes(
        self, trace_id: str, traceparent: str, *, arrived_by: str | None = None
    ) -> dict[str, str]:
        attrs = {
            EVENT_ID: self.id,
            EVENT_TYPE: self.type,
            CREATED: str(self.created),
            LIVEMODE: "true" if self.livemode else "false",
            TRACE_ID: trace_id,
            TRACEPARENT: traceparent,
        }
        optional = {API_VERSION: self.api_version, OBJECT_ID: self.object_id}
        optional[CUSTOMER_ID] = self.customer_id
        attrs.update({k: v for k, v in optional.items() if v})
        if arrived_by:
            attrs[arrived_by] = "true"
        return attrs


def loads(body: bytes) -> Any:
    """The one JSON decoder of a stripe-events body: the webhook, the subscriber and the
    dead-letter tools read the same bytes the same way.

    orjson, strictly, with no lenient fallback: it refuses what RFC 8259 does not allow or
    what cannot become a str (a lone surrogate escape, NaN, numbers beyond a double) and
    nesting deeper than 1,024 levels, all as a ValueError (never a RecursionError). Stripe
    never sends such bytes; a lenient webhook would acknowledge an event the subscriber
    could then never read (issue 17, rows 4 and 5).
    """
    return orjson.loads(body)


def _document(body: bytes) -> dict[str, Any]:
    try:
        doc = loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidEnvelope("invalid_json", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise InvalidEnvelope("invalid_json", "not a JSON object")
    return doc


_Model = TypeVar("_Model", StripeEvent, ThinEventNotification)


def _validated(model: type[_Model], doc: dict[str, Any]) -> _Model:
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        field = ".".join(str(p) for p in first) or None
        raise InvalidEnvelope("invalid_envelope", summarise(exc), field=field) from None
    _check_fits_pubsub(envelope_of(parsed))
    return parsed


def parse_event(body: bytes) -> StripeEvent:
    """The one parser of a snapshot event body (catch-up and the API return only these).

    Raises InvalidEnvelope: code invalid_json (not a JSON object), invalid_envelope (not a
    Stripe event), or field_too_long (a routing field Pub/Sub cannot carry; `field` names
    it). Any parser failure ends here as InvalidEnvelope, so neither caller sees a 500 or a
    transient error for bad bytes.
    """
    return _validated(StripeEvent, _document(body))


def parse_message(body: bytes) -> StripeEvent | ThinEventNotification:
    """The one parser of a stripe-events body, used by the webhook and the subscriber: a
    snapshot event (`object: "event"`) or a thin notification (`object: "v2.core.event"`,
    as `stripe.v2.core.EventNotification.from_json` tells them apart). Raises
    InvalidEnvelope like `parse_event`."""
    doc = _document(body)
    if doc.get("object") == THIN_EVENT_OBJECT:
        return _validated(ThinEventNotification, doc)
    return _validated(StripeEvent, doc)


def _check_fits_pubsub(envelope: Envelope) -> None:
    routing = {
        EVENT_ID: envelope.id,
        EVENT_TYPE: envelope.type,
        API_VERSION: envelope.api_version,
        OBJECT_ID: envelope.object_id,
        CUSTOMER_ID: envelope.customer_id,
    }
    for name, value in routing.items():
        # The customer id is also the ordering key; both limits are 1,024 bytes.
        limit = MAX_ORDERING_KEY_BYTES if name == CUSTOMER_ID else MAX_ATTRIBUTE_VALUE_BYTES
        if value is not None and len(value.encode()) > limit:
            raise InvalidEnvelope("field_too_long", f"{name} is over {limit} bytes", field=name)


def summarise(exc: pydantic.ValidationError) -> str:
    """A validation error in one line, for a failure record or a log line."""
    parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]]
    return f"{exc.title} invalid: " + "; ".join(parts)


def envelope_of(event: StripeEvent | ThinEventNotification) -> Envelope:
    if isinstance(event, ThinEventNotification):
        return Envelope(
            id=event.id,
            type=event.type,
            created=event.created_second,
            livemode=event.livemode,
            api_version=None,
            object_id=event.object_id,
            # A thin notification names only its related object; tying it to a customer
            # would take an API read, which the webhook never makes.
            customer_id=None,
            thin=True,
        )
    return Envelope(
        id=event.id,
        type=event.type,
        created=event.created,
        livemode=event.livemode,
        api_version=event.api_version,
        object_id=event.object_id or None,
        customer_id=event.customer_id,
    )


def parse_envelope(body: bytes) -> Envelope:
    """The routing fields of `body`, parsed by `parse_message`; raises InvalidEnvelope."""
    return envelope_of(parse_message(body))


def trace_context(headers: Mapping[str, str] | Any) -> tuple[str, str]:
    """(trace_id, traceparent) from W3C traceparent or X-Cloud-Trace-Context, else new."""
    incoming = (headers.get("traceparent") or "").strip().lower()
    match = _TRACEPARENT.match(incoming)
    if match and match.group(1) != "0" * 32:
        return match.group(1), incoming
    match = _CLOUD_TRACE.match((headers.get("X-Cloud-Trace-Context") or "").strip().lower())
    trace_id = match.group(1) if match else secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class OutgoingEvent:
    """A stripe-events message ready to publish."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str


def from_api(raw: Mapping[str, Any], *, arrived_by: str) -> OutgoingEvent:
    """An event as Stripe's API returned it (catch-up), put on the topic like the webhook.

    Raises InvalidEnvelope when it is not an event.
    """
    data = json.dumps(raw, separators=(",", ":")).encode()
    envelope = parse_envelope(data)
    trace_id, traceparent = trace_context({})
    return OutgoingEvent(
        data=data,
        attributes=envelope.attributes(trace_id, traceparent, arrived_by=arrived_by),
        ordering_key=envelope.ordering_key,
    )


Arrival = Literal["webhook", "replay", "catch_up"]


def arrived_by(attributes: Mapping[str, str]) -> Arrival:
    """How a message reached the topic: webhook, replay or catch_up."""
    if attributes.get(REPLAY) == "true":
        return "replay"
    if attributes.get(CATCH_UP) == "true":
        return "catch_up"
    return "webhook"
