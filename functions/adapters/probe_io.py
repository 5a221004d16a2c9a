"""The synthetic probe's two ends: the public webhook URL, and its own subscription.

The subscription (`entitlement-changed-probe`) filters on `attributes.synthetic = "true"`
in production; the emulator accepts filters but does not apply them, so every message is
also matched here and everything pulled is acked (the subscription is the probe's own).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests

from functions.adapters.google_errors import google_call
from functions.errors import TransientError
from schemas.entitlements import SYNTHETIC_ATTRIBUTE


class HttpWebhookPoster:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self._url = url
        self._timeout = timeout

    def post(self, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            response = requests.post(
                self._url, data=body, headers=dict(headers), timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from exc
        return response.status_code


class PubSubProbeInbox:
    def __init__(self, project: str, subscription: str) -> None:
        self._project = project
        self._subscription = subscription
        self._client: Any = None

    def _subscriber(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1  # noqa: PLC0415 - lazy, like every adapter

            self._client = pubsub_v1.SubscriberClient()
        return self._client

    def wait_for(self, causing_event_id: str, timeout: float) -> Mapping[str, str] | None:
        client = self._subscriber()
        path = client.subscription_path(self._project, self._subscription)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with google_call("pubsub probe pull"):
                    response = client.pull(
                        request={"subscription": path, "max_messages": 100},
                        timeout=max(1.0, min(10.0, deadline - time.monotonic())),
                    )
            except TransientError:
                # An empty pull can end in a deadline; an outage shows as no message in
                # time, which is what the probe reports.
                time.sleep(0.2)
                continue
            received = list(response.received_messages)
            if received:
                with google_call("pubsub probe ack"):
                    client.acknowledge(
                        request={"subscription": path, "ack_ids": [r.ack_id for r in received]}
                    )
            for item in received:
                attributes = dict(item.message.attributes)
                if (
                    attributes.get(SYNTHETIC_ATTRIBUTE) == "true"
                    and attributes.get("causing_event_id") == causing_event_id
                ):
                    return attributes
        return None
