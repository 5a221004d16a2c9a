"""Pub/Sub publishing behind a small port, so handlers never see a Google client.

Every caller waits for the server's ack before it answers (Stripe waits on the webhook;
the relay marks an entry sent only after it is published), so this adapter makes one
unary `Publish` call per message with the generated (GAPIC) client of
google-cloud-pubsub, not the high-level batching client. Batching buys nothing when each
caller waits for its own message, and `make bench` measured what the batching machinery
costs: a timer thread, a commit thread per batch and a per-key sequencer made a 60 KB
publish take ~3x the wall time and ~2.5x the CPU of the unary call.

Ordering keys are still set: Pub/Sub orders messages of one key by the time the server
received them, and a caller only publishes its next message once the previous one is
acknowledged, so the relay's versions arrive in order. (Two webhook requests in flight at
the same moment have no order between them to keep: Stripe does not order deliveries.)
Without the high-level client there is no per-key "paused after a failure" state either,
so a failed publish can never block a customer's later messages.

One client per process, created on first publish (never at import time: a cold start
that only answers 405 should not pay for gRPC channel set-up) and kept for its life.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from functions.errors import TransientError


def _retry_policy(timeout: float) -> Any:
    """Retry what the server may answer differently in a moment, within `timeout` overall."""
    from google.api_core.retry import Retry, if_exception_type  # noqa: PLC0415

    from functions.adapters.google_errors import TRANSIENT  # noqa: PLC0415

    return Retry(
        predicate=if_exception_type(*TRANSIENT),
        initial=0.05,
        maximum=1.0,
        multiplier=2.0,
        timeout=timeout,
    )


class PubSubPublisher:
    """The one real adapter over google-cloud-pubsub."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._client: Any = None
        self._retries: dict[float, Any] = {}
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        # Double-checked under a lock: gunicorn threads may race on the first request.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # Lazy by design: no gRPC set-up at import time. The generated client
                    # honours PUBSUB_EMULATOR_HOST like the high-level one.
                    from google.pubsub_v1 import PublisherClient  # noqa: PLC0415

                    self._client = PublisherClient()
        return self._client

    def _retry(self, timeout: float) -> Any:
        retry = self._retries.get(timeout)
        if retry is None:
            retry = self._retries[timeout] = _retry_policy(timeout)
        return retry

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        from google.pubsub_v1.types import PubsubMessage  # noqa: PLC0415

        client = self._get_client()
        message = PubsubMessage(data=data, attributes=dict(attributes), ordering_key=ordering_key)
        try:
            response = client.publish(
                topic=f"projects/{self._project}/topics/{topic}",
                messages=[message],
                retry=self._retry(timeout),
                timeout=timeout,
            )
            message_id: str = response.message_ids[0]
        except Exception as exc:
            # Every failure is transient here, even a missing topic: that is a deployment
            # fault, and the webhook must answer 5xx (Stripe retries) rather than drop it.
            raise TransientError(
                f"publish to topic {topic!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return message_id
