"""Pub/Sub publishing behind a small port, so handlers never see a Google client.

One `PublisherClient` per process, created on first publish (never at import time: a cold
start that only answers 405 should not pay for gRPC channel set-up) and reused for the
life of the process. Message ordering is enabled because the webhook and the relay key
messages by customer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from functions.errors import TransientError


class Publisher(Protocol):
    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        """Publish and wait for the server's ack; returns the message id.

        Raises TransientError on any failure: the caller answers so the message is retried.
        """
        ...


class PubSubPublisher:
    """The one real adapter over google-cloud-pubsub."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._client: Any = None
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        # Double-checked under a lock: gunicorn threads may race on the first request.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # Lazy by design: no gRPC set-up at import time.
                    from google.cloud.pubsub_v1 import PublisherClient  # noqa: PLC0415
                    from google.cloud.pubsub_v1.types import (  # noqa: PLC0415
                        BatchSettings,
                        PublisherOptions,
                    )

                    self._client = PublisherClient(
                        publisher_options=PublisherOptions(enable_message_ordering=True),
                        # Every caller waits for its ack (Stripe waits on the webhook), so the
                        # default 10 ms batching timer is pure latency: measured in make bench,
                        # it was ~10 of the webhook's ~13 ms. 1 ms still lets concurrent
                        # requests share a batch.
                        batch_settings=BatchSettings(max_latency=0.001),
                    )
        return self._client

    def _topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = f"projects/{self._project}/topics/{topic}"
            self._paths[topic] = path
        return path

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        client = self._get_client()
        path = self._topic_path(topic)
        try:
            future = self._submit(client, path, data, attributes, ordering_key)
            message_id: str = future.result(timeout=timeout)
        except Exception as exc:
            if ordering_key:
                # A failed publish pauses its key; without resuming, every later publish
                # for this customer would fail at once. If it only timed out on our side it
                # is not paused yet (see _submit).
                with contextlib.suppress(RuntimeError):
                    client.resume_publish(path, ordering_key)
            raise TransientError(
                f"publish to topic {topic!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return message_id

    @staticmethod
    def _submit(
        client: Any, path: str, data: bytes, attributes: Mapping[str, str], ordering_key: str
    ) -> Any:
        from google.cloud.pubsub_v1.publisher.exceptions import (  # noqa: PLC0415
            PublishToPausedOrderingKeyException,
        )

        try:
            return client.publish(path, data, ordering_key=ordering_key, **dict(attributes))
        except PublishToPausedOrderingKeyException:
            # An earlier publish for this key failed after we stopped waiting for it (the
            # client pauses the key only then): resume now rather than refuse the customer.
            client.resume_publish(path, ordering_key)
            return client.publish(path, data, ordering_key=ordering_key, **dict(attributes))
