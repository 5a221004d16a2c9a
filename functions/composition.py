"""The composition root: the one place adapters are built and handed to services.

Every entry point (the HTTP and Pub/Sub functions, the scheduled jobs, the CLI) asks here
for what it needs. Builders run on first use, never at import time, and each result is
kept for the life of the process. Adapter modules are imported inside the builders, so
importing this module (or `billing-ops --help`) loads neither the Google nor the Stripe
client libraries.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from functions.config import (
    reset_settings_cache,
    stripe_api_settings,
    subscriber_settings,
    webhook_settings,
)
from functions.log import configure_logging
from statemachine.decision import Policy

if TYPE_CHECKING:
    from functions.entrypoints.checkout import Deps as CheckoutDeps
    from functions.entrypoints.entitlements import Deps as ReadApiDeps
    from functions.entrypoints.webhook import WebhookHandler
    from functions.ports import (
        AccountStore,
        AuditLog,
        BillingRepository,
        DeadLetterQueue,
        Publisher,
        StripeGateway,
    )
    from functions.services.accounts import AccountService
    from functions.services.apply import Applier
    from functions.services.dead_letters import DeadLetterService
    from functions.services.probe import Probe
    from functions.services.reconcile import ReconcileService
    from functions.services.relay import OutboxRelay
    from functions.services.subscriber import Subscriber
    from functions.services.thin_events import ThinEvents

# ruff: noqa: PLC0415 - lazy imports are the point of this module (see the docstring)


def _project() -> str:
    return subscriber_settings().google_cloud_project


# -- adapters -----------------------------------------------------------------------------


@cache
def repository() -> BillingRepository:
    from functions.adapters.firestore_repository import FirestoreRepository

    return FirestoreRepository(_project())


@cache
def publisher() -> Publisher:
    from functions.adapters.pubsub_publisher import PubSubPublisher

    return PubSubPublisher(_project())


@cache
def audit() -> AuditLog:
    from functions.adapters.firestore_audit import FirestoreAuditLog

    return FirestoreAuditLog(_project())


@cache
def dead_letter_queue() -> DeadLetterQueue:
    from functions.adapters.pubsub_dead_letters import PubSubDeadLetterQueue

    settings = subscriber_settings()
    return PubSubDeadLetterQueue(settings.google_cloud_project, settings.dead_letter_subscription)


@cache
def stripe_gateway() -> StripeGateway:
    from functions.adapters.stripe_gateway import SdkStripeGateway

    return SdkStripeGateway.from_settings(stripe_api_settings())


def stripe_api_version() -> str:
    """The API version every request and our webhook endpoint are pinned to."""
    from functions.adapters.stripe_gateway import STRIPE_API_VERSION

    return STRIPE_API_VERSION


def account_store(project: str) -> AccountStore:
    from functions.adapters.firestore_accounts import FirestoreAccountStore

    return FirestoreAccountStore(project)


# -- services -----------------------------------------------------------------------------


@cache
def policy() -> Policy:
    return Policy(grace_period_days=subscriber_settings().grace_period_days)


@cache
def relay() -> OutboxRelay:
    from functions.services.relay import OutboxRelay

    return OutboxRelay(repository(), publisher(), subscriber_settings().entitlements_topic)


@cache
def applier() -> Applier:
    from functions.services.apply import Applier

    ttl = subscriber_settings().processed_event_ttl_days
    return Applier(repository(), relay(), marker_ttl_days=ttl)


@cache
def subscriber() -> Subscriber:
    from functions.services.subscriber import Subscriber

    settings = subscriber_settings()
    configure_logging(settings.log_level)
    return Subscriber(
        applier(),
        publisher(),
        project=settings.google_cloud_project,
        dead_letter_topic=settings.dead_letter_topic,
        policy=policy(),
        max_delivery_attempts=settings.max_delivery_attempts,
        thin=thin_events(),
    )


@cache
def thin_events() -> ThinEvents:
    from functions.services.thin_events import ThinEvents

    # The gateway is built at the first thin notification: snapshot-only deployments need
    # no Stripe key in the subscriber.
    return ThinEvents(stripe_gateway)


@cache
def accounts() -> AccountService:
    from functions.services.accounts import AccountService

    return AccountService(applier(), audit(), policy())


@cache
def reconciler() -> ReconcileService:
    from functions.services.reconcile import ReconcileService

    settings = subscriber_settings()
    return ReconcileService(
        applier(),
        stripe_gateway(),
        policy(),
        audit=audit(),
        publisher=publisher(),
        events_topic=settings.stripe_events_topic,
        livemode=settings.stripe_livemode,
    )


@cache
def dead_letters() -> DeadLetterService:
    from functions.services.dead_letters import DeadLetterService

    topic = subscriber_settings().stripe_events_topic
    return DeadLetterService(
        dead_letter_queue(), publisher(), audit(), repository(), events_topic=topic
    )


# -- HTTP functions with settings of their own --------------------------------------------


@cache
def webhook_handler() -> WebhookHandler:
    from functions.adapters.pubsub_publisher import PubSubPublisher
    from functions.entrypoints.webhook import WebhookHandler

    # Its own settings (the signing secret, not the subscriber's) and its own publisher.
    settings = webhook_settings()
    configure_logging(settings.log_level)
    return WebhookHandler(settings, PubSubPublisher(settings.google_cloud_project))


@cache
def checkout_deps() -> CheckoutDeps:
    from functions.adapters.stripe_gateway import SdkStripeGateway
    from functions.config import checkout_settings
    from functions.entrypoints.auth import auth_settings
    from functions.entrypoints.checkout import Deps
    from functions.services.checkout import CheckoutService, CheckoutUrls

    settings = checkout_settings()
    configure_logging(settings.log_level)
    urls = CheckoutUrls(
        success=settings.checkout_success_url,
        cancel=settings.checkout_cancel_url,
        portal_return=settings.portal_return_url,
    )
    service = CheckoutService(
        gateway=SdkStripeGateway.from_settings(settings),
        accounts=account_store(settings.google_cloud_project),
        urls=urls,
    )
    return Deps(service=service, auth=auth_settings())


@cache
def read_api_deps() -> ReadApiDeps:
    from functions.adapters.firestore_repository import FirestoreRepository
    from functions.config import read_api_settings
    from functions.entrypoints.auth import auth_settings
    from functions.entrypoints.entitlements import Deps
    from functions.services.entitlements_read import EntitlementReader

    # Its own settings: the read API needs the project and the auth keys, nothing of the
    # subscriber's (no topics, no Stripe key).
    settings = read_api_settings()
    configure_logging(settings.log_level)
    reader = EntitlementReader(FirestoreRepository(settings.google_cloud_project))
    return Deps(reader=reader, auth=auth_settings(), max_batch=settings.read_api_max_batch)


@cache
def probe() -> Probe:
    from functions.adapters.firestore_repository import FirestoreRepository
    from functions.adapters.probe_io import HttpWebhookPoster, PubSubProbeInbox
    from functions.config import probe_settings
    from functions.services.probe import Probe, current_plan

    settings = probe_settings()
    configure_logging(settings.log_level)
    project = settings.google_cloud_project
    return Probe(
        HttpWebhookPoster(settings.probe_webhook_url),
        PubSubProbeInbox(project, settings.probe_subscription),
        current_plan(FirestoreRepository(project)),
        settings.stripe_webhook_secret,
        livemode=settings.stripe_livemode,
        timeout=settings.probe_timeout_seconds,
    )


_BUILDERS = (
    repository,
    publisher,
    audit,
    dead_letter_queue,
    stripe_gateway,
    policy,
    relay,
    applier,
    subscriber,
    thin_events,
    accounts,
    reconciler,
    dead_letters,
    webhook_handler,
    checkout_deps,
    read_api_deps,
    probe,
)


def reset() -> None:
    """Tests change the environment between cases; production processes never call this."""
    reset_settings_cache()
    for builder in _BUILDERS:
        builder.cache_clear()
    from functions.entrypoints import auth

    auth.auth_settings.cache_clear()
