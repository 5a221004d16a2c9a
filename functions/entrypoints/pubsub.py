"""process_stripe_event: the Pub/Sub push entry point. Decode, call the subscriber, return."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from typing import Any

import flask

from functions import composition
from functions.entrypoints.oidc import denied
from functions.errors import InvalidPayload
from functions.services.subscriber import IncomingMessage


class DeliveryCounter:
    """Deliveries seen per message id in this process, for pushes that carry no count.

    Pub/Sub puts `deliveryAttempt` in the push body (with a dead-letter policy), but the
    Pub/Sub emulator never sends it, so without this the subscriber's explicit
    dead-letter at the limit could not work locally. A restarted process starts again at
    1: it can only count low, which leaves the message to Pub/Sub's policy, never early.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def note(self, message_id: str) -> int:
        with self._lock:
            count = self._seen.pop(message_id, 0) + 1
            self._seen[message_id] = count
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return count

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._seen.pop(message_id, None)


_deliveries = DeliveryCounter()


def _delivery_attempt(message: IncomingMessage) -> int | None:
    # functions-framework's push-to-CloudEvent conversion drops the body's
    # deliveryAttempt, so read it from the raw request Pub/Sub sent.
    raw = flask.request.get_json(silent=True) if flask.has_request_context() else None
    attempt = raw.get("deliveryAttempt") if isinstance(raw, dict) else None
    if isinstance(attempt, int) and attempt > 0:
        return attempt
    if message.delivery_attempt is not None:
        return message.delivery_attempt
    return _deliveries.note(message.message_id) if message.message_id else None


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
    message = dataclasses.replace(message, delivery_attempt=_delivery_attempt(message))
    subscriber.handle(message)
    _deliveries.forget(message.message_id)  # acknowledged: no further delivery to count
