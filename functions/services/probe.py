"""The synthetic probe: one signed Stripe-shaped event through the live pipeline.

Every five minutes (Cloud Scheduler) the probe posts, to the public webhook URL and the
way Stripe would, a `customer.subscription.*` event for the reserved probe customer
(statemachine/synthetic.py) that switches its plan, then waits for the entitlement-changed
message that event causes. Webhook, Pub/Sub, subscriber, Firestore and relay all have to
work for it to arrive, so one number says whether billing turns events into access: the
`probe_completed` log line's latency (a log-based metric; the alert fires when none
completes for 15 minutes or it grows too slow). Each run switches plan, so every run
changes entitlements and must produce a message.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from functions.log import get_logger
from functions.ports import BillingRepository
from functions.stripe_signature import sign
from statemachine.synthetic import PROBE_CUSTOMER_ID, PROBE_SUBSCRIPTION_ID

# The plans the probe alternates between (lookup keys of the catalog's plans).
PLANS = ("dataface_starter_monthly", "dataface_team_monthly")
SUBSCRIPTION_CREATED = 1_700_000_000


class WebhookPoster(Protocol):
    def post(self, body: bytes, headers: Mapping[str, str]) -> int:
        """POST to the public webhook URL; returns the HTTP status."""
        ...


class ProbeInbox(Protocol):
    def wait_for(self, causing_event_id: str, timeout: float) -> Mapping[str, str] | None:
        """The attributes of the entitlement-changed message the event caused, or None."""
        ...


@dataclass(frozen=True)
class ProbeState:
    plan: str | None  # lookup key of the probe customer's plan now
    known: bool  # whether the probe customer has a record yet
    last_created: int = 0  # the newest event applied to it (the ordering watermark)


class CurrentPlan(Protocol):
    def __call__(self) -> ProbeState: ...


def current_plan(repo: BillingRepository) -> CurrentPlan:
    def read() -> ProbeState:
        record = repo.get_record(PROBE_CUSTOMER_ID)
        if record is None:
            return ProbeState(None, False)
        keys = [item.lookup_key for item in record.items if item.lookup_key in PLANS]
        last = record.watermark.created if record.watermark else 0
        return ProbeState(keys[0] if keys else None, True, last)

    return read


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    event_id: str
    stage: str  # "completed", or where it stopped: "webhook", "delivery"
    latency_ms: float | None = None
    detail: str = ""


def subscription_event(
    event_id: str,
    now: int,
    lookup_key: str,
    *,
    customer: str,
    subscription_id: str,
    subscription_created: int,
    first: bool,
    livemode: bool,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """A `customer.subscription.created|updated` event of the current API shape: one active
    subscription on the price with `lookup_key`, as Stripe sends it."""
    item = {
        "id": f"si_{subscription_id.removeprefix('sub_')}",
        "object": "subscription_item",
        "price": {"id": f"price_{lookup_key}", "object": "price", "lookup_key": lookup_key},
        "quantity": 1,
        "current_period_start": now,
        "current_period_end": now + 30 * 86400,
    }
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "created": subscription_created,
        "items": {"object": "list", "data": [item], "has_more": False},
        "cancel_at_period_end": False,
        "metadata": metadata,
        "livemode": livemode,
    }
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.created" if first else "customer.subscription.updated",
        "created": now,
        "livemode": livemode,
        "api_version": None,
        "data": {"object": subscription},
    }


def probe_event(
    event_id: str, now: int, lookup_key: str, *, first: bool, livemode: bool
) -> dict[str, Any]:
    """The probe customer's subscription event."""
    return subscription_event(
        event_id,
        now,
        lookup_key,
        customer=PROBE_CUSTOMER_ID,
        subscription_id=PROBE_SUBSCRIPTION_ID,
        subscription_created=SUBSCRIPTION_CREATED,
        first=first,
        livemode=livemode,
        metadata={"dataface_synthetic": "probe"},
    )


class Probe:
    def __init__(
        self,
        poster: WebhookPoster,
        inbox: ProbeInbox,
        current_plan: CurrentPlan,
        signing_secrets: Sequence[str],
        *,
        livemode: bool = False,
        timeout: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._poster, self._inbox, self._current = poster, inbox, current_plan
        self._secrets = list(signing_secrets)
        self._livemode, self._timeout, self._clock = livemode, timeout, clock

    def next_event(self, now: float) -> dict[str, Any]:
        """The event the next run posts (also what `billing-ops probe run --dry-run` shows)."""
        state = self._current()
        target = PLANS[1] if state.plan == PLANS[0] else PLANS[0]
        event_id = f"evt_probe{secrets.token_hex(12)}"
        # Newer than the last probe even when two run within a second (a manual run just
        # after the scheduled one): an event no newer than the watermark would be stale.
        created = max(int(now), state.last_created + 1)
        return probe_event(
            event_id, created, target, first=not state.known, livemode=self._livemode
        )

    def run(self) -> ProbeResult:
        started = self._clock()
        event = self.next_event(started)
        event_id = event["id"]
        target = event["data"]["object"]["items"]["data"][0]["price"]["lookup_key"]
        body = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, self._secrets, int(started)),
        }
        log = get_logger(component="probe", event_id=event_id, customer_id=PROBE_CUSTOMER_ID)
        status = self._poster.post(body, headers)
        if status != 200:
            log.error("probe_failed", stage="webhook", status=status)
            return ProbeResult(False, event_id, "webhook", detail=f"webhook answered {status}")
        attributes = self._inbox.wait_for(event_id, self._timeout)
        if attributes is None:
            log.error("probe_failed", stage="delivery", timeout_s=self._timeout)
            detail = f"no entitlement-changed message within {self._timeout:g} s"
            return ProbeResult(False, event_id, "delivery", detail=detail)
        latency_ms = round((self._clock() - started) * 1000, 1)
        log.info("probe_completed", latency_ms=latency_ms, plan=target)
        return ProbeResult(True, event_id, "completed", latency_ms=latency_ms)
