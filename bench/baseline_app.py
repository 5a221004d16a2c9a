"""Bench-only functions-framework source with the two webhook baselines.

`inline_webhook` is what many Stripe integrations do: `stripe.Webhook.construct_event`,
then the whole state change (our real FirestoreRepository.apply with the real domain)
before answering Stripe. `bare_ok` is the framework floor: read the body, return 200.
`publish_only` reads the body and publishes it with our PubSubPublisher, nothing else:
it splits our webhook's cost over the floor into the Pub/Sub client's share and ours.
All are served by the same functions-framework server as our webhook.
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from typing import Any

import functions_framework
import stripe

import statemachine
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.config import DEFAULT_STRIPE_EVENTS_TOPIC
from functions.ports import Operation
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent
from statemachine.decision import Decision, Policy

_MARKER_TTL_DAYS = 35


@cache
def _repo() -> FirestoreRepository:
    return FirestoreRepository(os.environ["GOOGLE_CLOUD_PROJECT"])


@cache
def _publisher() -> PubSubPublisher:
    return PubSubPublisher(os.environ["GOOGLE_CLOUD_PROJECT"])


@cache
def _secret() -> str:
    return os.environ["STRIPE_WEBHOOK_SECRET"].split(",")[0].strip()


_POLICY = Policy(grace_period_days=7)


@functions_framework.http
def inline_webhook(request: Any) -> tuple[str, int]:
    payload = request.get_data()
    try:
        stripe.Webhook.construct_event(
            payload, request.headers.get("Stripe-Signature", ""), _secret()
        )
    except (ValueError, stripe.SignatureVerificationError):
        return "invalid signature", 400
    event = StripeEvent.model_validate_json(payload)
    customer_id = event.customer_id if statemachine.is_handled_event_type(event.type) else None
    op = Operation(op_id=event.id, op_type=event.type, customer_id=customer_id, at=event.created)

    def decide(record: BillingRecord) -> Decision:
        return statemachine.decide(record, event, _POLICY)

    _repo().apply(op, decide if customer_id else None, marker_ttl_days=_MARKER_TTL_DAYS)
    return "", 200


@functions_framework.http
def bare_ok(request: Any) -> tuple[str, int]:
    request.get_data()
    return "", 200


@functions_framework.http
def publish_only(request: Any) -> tuple[str, int]:
    # A new ordering key per request, as ours gets in the bench (every event is a new
    # customer's): the client's per-key sequencer costs the same on both sides.
    _publisher().publish(
        DEFAULT_STRIPE_EVENTS_TOPIC,
        request.get_data(),
        attributes={},
        ordering_key=uuid.uuid4().hex,
    )
    return "", 200
