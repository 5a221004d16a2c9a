"""Keep an EntitlementsCache current from an entitlement-changed subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.consumer.cache import Applied, EntitlementsCache

if TYPE_CHECKING:
    from google.cloud.pubsub_v1.subscriber.futures import StreamingPullFuture


def follow(
    project: str, subscription: str, cache: EntitlementsCache, **flow: Any
) -> StreamingPullFuture:
    """Streaming pull into `cache`; cancel the returned future to stop.

    The subscription must have message ordering on (each customer's versions in order)
    and a dead-letter policy of its own. A message is acked only after the cache holds
    it; an invalid one is nacked, so it reaches that dead-letter topic rather than
    vanishing.
    """
    from google.cloud import pubsub_v1  # noqa: PLC0415 - only this helper needs the client

    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(project, subscription)

    def callback(message: Any) -> None:
        outcome = cache.apply_message(message.data, dict(message.attributes))
        if outcome is Applied.INVALID:
            message.nack()
        else:
            message.ack()

    settings = pubsub_v1.types.FlowControl(**flow) if flow else pubsub_v1.types.FlowControl()
    return client.subscribe(path, callback=callback, flow_control=settings)
