"""An in-memory stand-in for the SubscriberClient calls the local watchdog makes
(subscription_path, create_subscription, pull, acknowledge, close); unit tests only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class FakePullSubscriber:
    def __init__(self) -> None:
        self.queued: list[str] = []  # message ids waiting to be pulled
        self.created: list[str] = []
        self.acked: list[str] = []

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def create_subscription(self, request: dict[str, Any]) -> None:
        self.created.append(request["name"])

    def pull(self, request: dict[str, Any], timeout: float) -> Any:
        limit = request["max_messages"]
        batch, self.queued = self.queued[:limit], self.queued[limit:]
        received = [
            SimpleNamespace(
                ack_id=f"ack-{m}",
                message=SimpleNamespace(data=b"{}", attributes={}, ordering_key="", message_id=m),
            )
            for m in batch
        ]
        return SimpleNamespace(received_messages=received)

    def acknowledge(self, request: dict[str, Any]) -> None:
        self.acked += request["ack_ids"]

    def close(self) -> None:
        pass
