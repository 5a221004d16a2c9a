"""Helpers for subscriber tests on the emulators: a provisioned project, a real Subscriber,
and a reader for what was published on entitlement-changed."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.adapters.firestore_audit import FirestoreAuditLog
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.config import CommonSettings, StripeApiSettings
from functions.ports import BillingRepository, Publisher
from functions.services.apply import Applier
from functions.services.reconcile import ReconcileService
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from infra.local import observe
from infra.local.topology import OBSERVER_ENTITLEMENTS_SUBSCRIPTION, desired_topology, provision
from statemachine.decision import Policy


def new_project() -> tuple[str, CommonSettings]:
    project = f"sub-{uuid.uuid4().hex[:10]}"
    settings = CommonSettings(google_cloud_project=project)
    # Nothing listens on the push endpoint: these tests drive the handler in-process.
    provision(
        project,
        desired_topology(
            settings, subscriber_push_endpoint="http://127.0.0.1:9/", observer_subscriptions=True
        ),
    )
    return project, settings


def make_subscriber(
    project: str,
    settings: CommonSettings,
    repo: BillingRepository | None = None,
    publisher: Publisher | None = None,
    clock: Callable[[], float] = time.time,
) -> Subscriber:
    repo_ = repo or FirestoreRepository(project)
    pub = publisher or PubSubPublisher(project)
    return Subscriber(
        Applier(repo_, OutboxRelay(repo_, pub, settings.entitlements_topic), marker_ttl_days=35),
        pub,
        project=project,
        dead_letter_topic=settings.dead_letter_topic,
        policy=Policy(),
        clock=clock,
    )


def message(event: Mapping[str, Any], **attributes: str) -> IncomingMessage:
    return IncomingMessage(
        data=json.dumps(event).encode(),
        attributes=attributes,
        message_id=uuid.uuid4().hex,
    )


@dataclass(frozen=True)
class Received:
    customer_id: str
    version: int
    data: bytes
    attributes: dict[str, str]


def drain(project: str, subscription: str, quiet_seconds: float = 1.5) -> list[Received]:
    return [
        Received(
            customer_id=m.attributes.get("customer_id", ""),
            version=int(m.attributes.get("version", "0")),
            data=m.data,
            attributes=m.attributes,
        )
        for m in observe.drain(project, subscription, quiet_seconds)
    ]


def entitlements(project: str, quiet_seconds: float = 1.5) -> list[Received]:
    return drain(project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION, quiet_seconds)


def versions_after_dedupe(received: list[Received]) -> dict[str, list[int]]:
    """What a consumer following the README contract applies, per customer."""
    by_customer: dict[str, dict[int, bytes]] = defaultdict(dict)
    for item in received:
        first = by_customer[item.customer_id].setdefault(item.version, item.data)
        # A republished version must be byte-identical to the first publish.
        assert first == item.data, f"version {item.version} changed between publishes"
    return {c: sorted(v) for c, v in by_customer.items()}


def reconciler(
    subscriber: Subscriber, settings: CommonSettings, stripe_api_base: str, now: int
) -> ReconcileService:
    """A ReconcileService on the subscriber's applier, reading Stripe at `stripe_api_base`
    through the real gateway, with its clock fixed at `now`."""
    project = settings.google_cloud_project
    gateway = SdkStripeGateway.from_settings(
        StripeApiSettings(
            google_cloud_project=project,
            stripe_api_key="sk_test_local",
            stripe_api_base=stripe_api_base,
        )
    )
    return ReconcileService(
        subscriber.applier,
        gateway,
        Policy(),
        audit=FirestoreAuditLog(project),
        publisher=PubSubPublisher(project),
        events_topic=settings.stripe_events_topic,
        clock=lambda: now,
    )
