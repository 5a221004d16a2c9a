"""The Pub/Sub topology as data: the single local source of truth.

`make dev`, the test harness and the demo provision from `desired_topology`; the Terraform
drift test (tests/unit/test_infra_drift.py) compares infra/terraform/pubsub.tf against it,
so the emulator and production cannot silently disagree about ordering, dead-lettering or
backoff. Names come from functions.config.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from functions.config import DEFAULT_PROBE_SUBSCRIPTION, CommonSettings

OBSERVER_ENTITLEMENTS_SUBSCRIPTION = "entitlement-changed-observer"
OBSERVER_STRIPE_EVENTS_SUBSCRIPTION = "stripe-events-observer"

# Stripe retries for three days; a week of retention covers a subscriber outage.
WEEK_SECONDS = 7 * 24 * 3600
# Covers a Firestore transaction with retries plus the entitlement publish.
SUBSCRIBER_ACK_DEADLINE_SECONDS = 60


@dataclass(frozen=True)
class Topic:
    name: str


@dataclass(frozen=True)
class Subscription:
    name: str
    topic: str
    push_endpoint: str | None = None
    enable_message_ordering: bool = False
    ack_deadline_seconds: int = 60
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    minimum_backoff_seconds: int | None = None
    maximum_backoff_seconds: int | None = None
    message_retention_seconds: int = WEEK_SECONDS
    # Pub/Sub filter syntax. The emulator accepts a filter but does not apply it, so
    # every reader of a filtered subscription checks the attributes itself too.
    filter: str | None = None


# The synthetic probe reads only its own messages (functions/services/probe.py).
PROBE_FILTER = 'attributes.synthetic = "true"'


@dataclass(frozen=True)
class Topology:
    topics: tuple[Topic, ...]
    subscriptions: tuple[Subscription, ...]


def desired_topology(
    settings: CommonSettings,
    *,
    subscriber_push_endpoint: str,
    max_delivery_attempts: int = 5,
    observer_subscriptions: bool = False,
) -> Topology:
    if not 5 <= max_delivery_attempts <= 100:
        # Pub/Sub's own bounds for a dead-letter policy.
        raise ValueError("max_delivery_attempts must be between 5 and 100")
    topics = (
        Topic(settings.stripe_events_topic),
        Topic(settings.entitlements_topic),
        Topic(settings.dead_letter_topic),
    )
    subscriptions = [
        Subscription(
            name=settings.stripe_events_subscription,
            topic=settings.stripe_events_topic,
            push_endpoint=subscriber_push_endpoint,
            # One customer's events arrive in publish order (the webhook keys by customer).
            enable_message_ordering=True,
            ack_deadline_seconds=SUBSCRIBER_ACK_DEADLINE_SECONDS,
            dead_letter_topic=settings.dead_letter_topic,
            max_delivery_attempts=max_delivery_attempts,
            minimum_backoff_seconds=10,
            maximum_backoff_seconds=600,
        ),
        # Pull: operators inspect and replay dead letters from here (billing-ops dlq).
        Subscription(name=settings.dead_letter_subscription, topic=settings.dead_letter_topic),
        Subscription(
            name=DEFAULT_PROBE_SUBSCRIPTION,
            topic=settings.entitlements_topic,
            ack_deadline_seconds=30,
            message_retention_seconds=600,
            filter=PROBE_FILTER,
        ),
    ]
    if observer_subscriptions:
        # Local only: lets tests and the demo see what was published, in order.
        subscriptions += [
            Subscription(
                name=OBSERVER_ENTITLEMENTS_SUBSCRIPTION,
                topic=settings.entitlements_topic,
                enable_message_ordering=True,
            ),
            Subscription(
                name=OBSERVER_STRIPE_EVENTS_SUBSCRIPTION,
                topic=settings.stripe_events_topic,
                enable_message_ordering=True,
            ),
        ]
    return Topology(topics=topics, subscriptions=tuple(subscriptions))


def provision(project: str, topology: Topology) -> None:
    """Create every topic and subscription; existing ones are left as they are.

    Talks to whatever PUBSUB_EMULATOR_HOST points at (or real Pub/Sub without it).
    """
    from google.api_core.exceptions import AlreadyExists  # noqa: PLC0415
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient  # noqa: PLC0415
    from google.protobuf import duration_pb2  # type: ignore[import-untyped]  # noqa: PLC0415

    publisher = PublisherClient()
    subscriber = SubscriberClient()
    try:
        for topic in topology.topics:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(project, topic.name))
        for sub in topology.subscriptions:
            request: dict[str, object] = {
                "name": subscriber.subscription_path(project, sub.name),
                "topic": publisher.topic_path(project, sub.topic),
                "enable_message_ordering": sub.enable_message_ordering,
                "ack_deadline_seconds": sub.ack_deadline_seconds,
                "message_retention_duration": duration_pb2.Duration(
                    seconds=sub.message_retention_seconds
                ),
            }
            if sub.filter is not None:
                request["filter"] = sub.filter
            if sub.push_endpoint is not None:
                request["push_config"] = {"push_endpoint": sub.push_endpoint}
            if sub.dead_letter_topic is not None:
                request["dead_letter_policy"] = {
                    "dead_letter_topic": publisher.topic_path(project, sub.dead_letter_topic),
                    "max_delivery_attempts": sub.max_delivery_attempts,
                }
            if sub.minimum_backoff_seconds is not None:
                request["retry_policy"] = {
                    "minimum_backoff": duration_pb2.Duration(seconds=sub.minimum_backoff_seconds),
                    "maximum_backoff": duration_pb2.Duration(
                        seconds=sub.maximum_backoff_seconds or 600
                    ),
                }
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(request=request)
    finally:
        subscriber.close()
        publisher.transport.close()
