"""In-memory Publisher for unit tests of handlers; the real adapter is tested on the emulator."""

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
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[Published] = []
        # Topics that fail like an unreachable Pub/Sub or a missing topic.
        self.failing_topics: set[str] = set()

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        if topic in self.failing_topics:
            raise TransientError(f"publish to topic {topic!r} failed: injected")
        with self._lock:
            message_id = str(len(self.messages) + 1)
            self.messages.append(Published(topic, data, dict(attributes), ordering_key, message_id))
            return message_id

    def on(self, topic: str) -> list[Published]:
        return [m for m in self.messages if m.topic == topic]
