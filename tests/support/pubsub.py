"""Read what landed on a subscription, against the emulator."""

from __future__ import annotations

import time

from google.cloud.pubsub_v1 import SubscriberClient

from infra.local.observe import Observed, pull_once

# What arrived on a subscription: data, attributes, ordering key and message id.
Received = Observed


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
            batch = pull_once(client, path)
            if not batch:
                if expect is None and out:
                    break
                time.sleep(0.1)
                continue
            out += batch
    finally:
        client.close()
    return out
