"""Read what a local subscription received (demo and tests watch entitlement-changed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Observed:
    data: bytes
    attributes: dict[str, str]
    ordering_key: str = ""
    message_id: str = ""


def pull_once(client: Any, path: str) -> list[Observed]:
    """One pull of up to 100 messages, acknowledged before returning."""
    response = client.pull(request={"subscription": path, "max_messages": 100}, timeout=5)
    if not response.received_messages:
        return []
    client.acknowledge(
        request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
    )
    return [
        Observed(
            bytes(m.message.data),
            dict(m.message.attributes),
            m.message.ordering_key,
            m.message.message_id,
        )
        for m in response.received_messages
    ]


def drain(project: str, subscription: str, quiet_seconds: float = 1.5) -> list[Observed]:
    """Pull and ack until nothing arrives for `quiet_seconds`; in arrival order.

    Waits for quiet rather than stopping at the first empty pull: the emulator answers an
    empty pull while a publish may still be on its way.
    """
    from google.cloud.pubsub_v1 import SubscriberClient  # noqa: PLC0415 - after env set-up

    client = SubscriberClient()
    path = client.subscription_path(project, subscription)
    received: list[Observed] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < quiet_seconds:
            batch = pull_once(client, path)
            if not batch:
                time.sleep(0.1)
                continue
            last = time.monotonic()
            received += batch
    finally:
        client.close()
    return received
