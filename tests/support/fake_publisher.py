"""In-memory Publisher for unit tests of handlers.

It keeps the real adapter's contract (tests/integration/test_publisher_contract.py runs
one suite against both): ids are distinct, data and attributes are kept as given, a
missing topic and an empty message fail with TransientError naming the topic, and a
failure leaves nothing behind that could block a later publish.

Injected failures raise TransientError like an unreachable Pub/Sub would: every publish to
a topic in `failing_topics`, or of a body in `failing_data` (to fail chosen messages only).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from functions.errors import TransientError


@dataclass(frozen=True)
class Published:
    topic: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    message_id: str


class FakePublisher:
    def __init__(self, topics: set[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.messages: list[Published] = []
        # The topics that exist, like a provisioned project; None accepts any topic.
        self.topics: set[str] | None = None if topics is None else set(topics)
        # Topics, and message bodies, that fail like an unreachable Pub/Sub.
        self.failing_topics: set[str] = set()
        self.failing_data: set[bytes] = set()

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        if topic in self.failing_topics or bytes(data) in self.failing_data:
            raise TransientError(f"publish to topic {topic!r} failed: injected")
        if self.topics is not None and topic not in self.topics:
            raise TransientError(f"publish to topic {topic!r} failed: NotFound: no such topic")
        if not data and not attributes:
            # Pub/Sub rejects a message with neither data nor attributes (InvalidArgument).
            raise TransientError(f"publish to topic {topic!r} failed: message is empty")
        with self._lock:
            message_id = str(len(self.messages) + 1)
            self.messages.append(
                Published(topic, bytes(data), dict(attributes), ordering_key, message_id)
            )
            return message_id

    def on(self, topic: str) -> list[Published]:
        return [m for m in self.messages if m.topic == topic]
