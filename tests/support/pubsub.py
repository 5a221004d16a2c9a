"""Read what landed on a subscription, against the emulator."""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.cloud.pubsub_v1 import SubscriberClient


@dataclass(frozen=True)
class Received:
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    message_id: str


def pull_all(
    project: str, subscription: str, *, expect: int | None = None, deadline: float = 10.0
) -> list[Received]:
    """Pull and ack until `expect` messages arrived (or, without it, until a quiet pull
    after at least one message, or the deadline). Returns them in arrival order."""
    client = SubscriberClient()
    path = client.subscription_path(project, subscription)
    out: list[Received] = []
    end = time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            if expect is not None and len(out) >= expect:
                break
            response = client.pull(request={"subscription": path, "max_messages": 100}, timeout=5)
            if not response.received_messages:
                if expect is None and out:
                    break
                time.sleep(0.1)
                continue
            for item in response.received_messages:
                msg = item.message
                out.append(
                    Received(
                        bytes(msg.data), dict(msg.attributes), msg.ordering_key, msg.message_id
                    )
                )
            client.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
    finally:
        client.close()
    return out
