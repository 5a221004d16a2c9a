"""process_stripe_event: the Pub/Sub push entry point. Decode, call the subscriber, return."""

from __future__ import annotations

import json
from typing import Any

import flask

from functions import composition
from functions.entrypoints.oidc import denied
from functions.errors import InvalidPayload
from functions.services.subscriber import IncomingMessage


def handle_cloud_event(cloud_event: Any) -> None:
    """Pub/Sub messagePublished CloudEvent -> Subscriber.handle.

    Returning acknowledges; raising makes the push endpoint answer 5xx -> redelivery.
    A push without a valid OIDC token (when configured) is refused before anything runs.
    """
    refusal = denied(flask.request, "subscriber")
    if refusal is not None:
        flask.abort(refusal)
    subscriber = composition.subscriber()
    data = cloud_event.data
    try:
        message = IncomingMessage.from_push(data if isinstance(data, dict) else {})
    except InvalidPayload as exc:
        # An envelope we cannot even decode still goes to the dead-letter path with its reason.
        message = IncomingMessage(data=json.dumps(data, default=str).encode(), message_id="")
        subscriber.dead_letter_undecodable(message, exc)
        return
    subscriber.handle(message)
