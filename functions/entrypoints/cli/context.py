"""Adapters for the CLI, built from the environment on first use (never at import time).

`billing-ops --help` must work on a laptop without configuration and without loading the
Google and Stripe client libraries, so the adapter modules are imported inside the
builders, when a command body first asks for one.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from functions.adapters.firestore_audit import AuditLog
    from functions.adapters.firestore_repository import FirestoreRepository
    from functions.adapters.pubsub_publisher import Publisher
    from functions.services.accounts import AccountService
    from functions.services.dead_letters import DeadLetterService
    from functions.services.reconcile import ReconcileService
    from functions.services.relay import OutboxRelay
    from statemachine.decision import Policy

# ruff: noqa: PLC0415 - lazy imports are the point of this module (see the docstring)


def _logs_to_stderr() -> None:
    # The adapters log JSON lines for Cloud Logging on stdout; in the CLI stdout belongs to
    # the command's output (`--json | jq` must parse), so their lines go to stderr.
    from functions.log import configure_logging, log_to_stderr

    configure_logging()
    log_to_stderr()


def repository() -> FirestoreRepository:
    from functions import composition

    _logs_to_stderr()
    return composition.repository()


def publisher() -> Publisher:
    from functions import composition

    _logs_to_stderr()
    return composition.publisher()


def relay() -> OutboxRelay:
    from functions import composition

    _logs_to_stderr()
    return composition.relay()


def policy() -> Policy:
    from functions import composition

    return composition.policy()


@cache
def audit() -> AuditLog:
    from functions.adapters.firestore_audit import AuditLog
    from functions.config import subscriber_settings

    return AuditLog(subscriber_settings().google_cloud_project)


@cache
def dead_letters() -> DeadLetterService:
    from functions.adapters.pubsub_dead_letters import DeadLetterQueue
    from functions.config import subscriber_settings
    from functions.services.dead_letters import DeadLetterService

    settings = subscriber_settings()
    queue = DeadLetterQueue(settings.google_cloud_project, settings.dead_letter_subscription)
    return DeadLetterService(queue, publisher(), audit(), events_topic=settings.stripe_events_topic)


@cache
def accounts() -> AccountService:
    from functions.config import subscriber_settings
    from functions.services.accounts import AccountService

    return AccountService(
        repository(),
        relay(),
        audit(),
        policy(),
        marker_ttl_days=subscriber_settings().processed_event_ttl_days,
    )


@cache
def reconciler() -> ReconcileService:
    from functions.adapters.stripe_gateway import SdkStripeGateway
    from functions.config import stripe_api_settings, subscriber_settings
    from functions.services.reconcile import ReconcileService

    settings = subscriber_settings()
    return ReconcileService(
        repository(),
        relay(),
        SdkStripeGateway.from_settings(stripe_api_settings()),
        policy(),
        publisher=publisher(),
        events_topic=settings.stripe_events_topic,
        marker_ttl_days=settings.processed_event_ttl_days,
        livemode=settings.stripe_livemode,
    )


def reset() -> None:
    """Tests switch projects between cases; the CLI process never needs this."""
    from functions import composition

    composition.reset()
    for fn in (audit, dead_letters, accounts, reconciler):
        fn.cache_clear()
