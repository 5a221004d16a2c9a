"""Thin entry points of the subscriber side: decode, call the handler, return."""

from __future__ import annotations

import json
import time
from typing import Any

import flask

from functions import wiring
from functions.config import subscriber_settings
from functions.errors import InvalidPayload
from functions.reevaluate import reevaluate_due
from functions.subscriber import IncomingMessage


def handle_cloud_event(cloud_event: Any) -> None:
    """Pub/Sub messagePublished CloudEvent -> Subscriber.handle.

    Returning acknowledges; raising makes the push endpoint answer 5xx -> redelivery.
    """
    subscriber = wiring.subscriber()
    data = cloud_event.data
    try:
        message = IncomingMessage.from_push(data if isinstance(data, dict) else {})
    except InvalidPayload as exc:
        # An envelope we cannot even decode still goes to the dead-letter path with its reason.
        message = IncomingMessage(data=json.dumps(data, default=str).encode(), message_id="")
        subscriber.dead_letter_undecodable(message, exc)
        return
    subscriber.handle(message)


def handle_sweep_request() -> flask.Response:
    result = wiring.relay().sweep(subscriber_settings().outbox_sweep_after_seconds)
    return flask.jsonify({"customers": result.customers, "published": result.published})


def handle_reevaluate_request() -> flask.Response:
    settings = subscriber_settings()
    result = reevaluate_due(
        wiring.repository(),
        wiring.relay(),
        wiring.policy(),
        int(time.time()),
        marker_ttl_days=settings.processed_event_ttl_days,
    )
    return flask.jsonify({"checked": result.checked, "changed": result.changed})
