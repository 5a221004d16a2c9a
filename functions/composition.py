"""Process-wide adapters, built on first use (never at import time) and then reused."""

from __future__ import annotations

from functools import cache

from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.config import subscriber_settings
from functions.log import configure_logging
from functions.services.relay import OutboxRelay
from functions.services.subscriber import Subscriber
from statemachine.decision import Policy


@cache
def repository() -> FirestoreRepository:
    return FirestoreRepository(subscriber_settings().google_cloud_project)


@cache
def publisher() -> PubSubPublisher:
    return PubSubPublisher(subscriber_settings().google_cloud_project)


@cache
def policy() -> Policy:
    return Policy(grace_period_days=subscriber_settings().grace_period_days)


@cache
def subscriber() -> Subscriber:
    settings = subscriber_settings()
    configure_logging(settings.log_level)
    return Subscriber(
        repository(),
        publisher(),
        project=settings.google_cloud_project,
        entitlements_topic=settings.entitlements_topic,
        dead_letter_topic=settings.dead_letter_topic,
        policy=policy(),
        marker_ttl_days=settings.processed_event_ttl_days,
    )


@cache
def relay() -> OutboxRelay:
    return OutboxRelay(repository(), publisher(), subscriber_settings().entitlements_topic)


def reset() -> None:
    """For tests that change the environment between cases."""
    for fn in (repository, publisher, policy, subscriber, relay):
        fn.cache_clear()
