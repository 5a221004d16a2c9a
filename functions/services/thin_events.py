"""Thin event notifications: which ones we act on, and the evidence each one stands for.

A thin notification (`schemas.thin_events`) names an object and carries no snapshot, so
the subscriber reads the object's current state through `StripeGateway` (paced by its
token bucket, retried; a 429 or 5xx that outlasts the retries is a TransientError and the
message is redelivered) and hands the domain an ordinary event built from it. The domain
has one path: `statemachine.decide` judges that event like any snapshot, with the
watermark and the idempotency marker deciding what a second notice of the same change
does (nothing).

Which types: exactly those whose classic name the domain handles
(`statemachine.HANDLED_EVENT_TYPES`) with `v1.` in front, plus the finer subscription
types Stripe sends for a change the domain reads from the subscription (a status, an
item's price or quantity, the cancellation date). `v1.invoice.upcoming` names no object
(a preview has no id) and the domain does nothing with it; `v1.invoice.overdue` and the
like carry no fact the domain keeps. Everything else is acknowledged as ignored without
an API read.

Time: the event is dated by the notification's `created` (in whole seconds, like the
snapshot event Stripe creates for the same change at the same moment), not by when we
read. The read is Stripe's current state, so it may already hold later changes; dating it
by our read would make it "newer" than those changes' own events, but it would also start
grace clocks (`past_due_since`) at our latency, and a change that arrives as both kinds
would then leave a record that depends on which came first. Dated by the notification, a
snapshot and a thin notice of one change are the same evidence: the second is a noop (or
stale, when the read already held a later change), and each later change has its own
notification. Two different reads in one second are left to the domain's same-second
rule (evidence, else an anomaly the reconcile job answers within a minute).

One change, one effect: a snapshot and a thin notice of one subscription change are the
same state, so whichever comes second is a noop (or stale) by the watermark, whatever
their ids. Invoice facts are not states but dated facts (when a payment failed), and the
two events of one change may straddle a second, so there the ids must agree: the v2 event
(GET /v2/core/events/{id}) names its v1 twin in `snapshot_event`, and the notification
is applied under that id, so the processed-event marker lets only the first of the two
through. That costs one more read per invoice notification (they come one per payment
attempt, not in bursts); subscription notifications, which do burst, need none.

Coalescing: one read serves every later notification for the same object that was created
before the read started (less `skew_seconds`, for the two clocks), within `max_age_seconds`.
Notifications for one object share an ordering key (the webhook keys them by the object)
and reads of one object are single-flight within an instance, so a burst costs one read
per instance once it is older than the skew allowance (Stripe's delivery takes longer).
A read that started before a notification was created never serves it: it might predate
the change that notification is about.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pydantic

from functions.errors import InvalidPayload
from functions.ports import StripeGateway
from schemas.stripe import StripeEvent
from schemas.thin_events import ThinEventNotification
from statemachine import HANDLED_EVENT_TYPES

THIN_PREFIX: Final = "v1."
_SUBSCRIPTION_UPDATED: Final = "customer.subscription.updated"
# Finer v1 subscription types (stripe.events.V1CustomerSubscription*EventNotification)
# whose change lives in what the domain reads from a subscription.
FINER_SUBSCRIPTION_TYPES: Final = frozenset(
    f"v1.customer.subscription.{name}"
    for name in (
        "active",
        "past_due",
        "trialing",
        "unpaid",
        "incomplete",
        "incomplete_expired",
        "item_added",
        "item_removed",
        "item_price_changed",
        "item_quantity_changed",
        "cancel_at_changed",
    )
)
# The related object type each family names, and whether a read of it can be applied.
_OBJECT_TYPES: Final = {
    "customer.subscription.": "subscription",
    "invoice.": "invoice",
    "checkout.session.": "checkout.session",
}
_NO_OBJECT: Final = frozenset({"invoice.upcoming"})


def _classic(thin_type: str) -> str | None:
    if not thin_type.startswith(THIN_PREFIX):
        return None
    name = thin_type.removeprefix(THIN_PREFIX)
    if name in HANDLED_EVENT_TYPES and name not in _NO_OBJECT:
        return name
    return _SUBSCRIPTION_UPDATED if thin_type in FINER_SUBSCRIPTION_TYPES else None


HANDLED_THIN_TYPES: Final = frozenset(
    {f"{THIN_PREFIX}{t}" for t in HANDLED_EVENT_TYPES if _classic(f"{THIN_PREFIX}{t}")}
    | FINER_SUBSCRIPTION_TYPES
)


def is_handled_thin_type(thin_type: str) -> bool:
    return thin_type in HANDLED_THIN_TYPES


def expected_object_type(thin_type: str) -> str | None:
    classic = _classic(thin_type)
    if classic is None:
        return None
    return next(kind for prefix, kind in _OBJECT_TYPES.items() if classic.startswith(prefix))


@dataclass(frozen=True)
class Read:
    started_at: float  # our clock, when the request left
    obj: dict[str, Any]


class ReadCache:
    """The last read of each object, bounded in size; thread-safe."""

    def __init__(
        self,
        *,
        max_age_seconds: float = 5.0,
        skew_seconds: float = 0.25,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_age = max_age_seconds
        self._skew = skew_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._reads: OrderedDict[tuple[str, str], Read] = OrderedDict()
        self._lock = threading.Lock()

    def serving(self, key: tuple[str, str], created_at: float) -> Read | None:
        """A read that already reflects a notification created at `created_at`."""
        with self._lock:
            read = self._reads.get(key)
            if read is None or self._clock() - read.started_at > self._max_age:
                return None
            return read if read.started_at >= created_at + self._skew else None

    def store(self, key: tuple[str, str], read: Read) -> None:
        with self._lock:
            current = self._reads.get(key)
            if current is not None and current.started_at > read.started_at:
                return  # a concurrent, later read stays
            self._reads[key] = read
            self._reads.move_to_end(key)
            while len(self._reads) > self._max_entries:
                self._reads.popitem(last=False)


class ThinEvents:
    """Turns a handled thin notification into the event the domain decides on."""

    def __init__(
        self,
        gateway: Callable[[], StripeGateway],
        *,
        cache: ReadCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`gateway` is called once, at the first notification that needs a read: a
        deployment without Stripe credentials still processes snapshot events (and a thin
        one then fails as a ConfigError, redelivered until the configuration is fixed)."""
        self._gateway_factory = gateway
        self._gateway: StripeGateway | None = None
        self._gateway_lock = threading.Lock()
        self._cache = cache or ReadCache(clock=clock)
        self._clock = clock
        # Bounded: a few objects may share a stripe, which only serialises their reads.
        self._stripes = tuple(threading.Lock() for _ in range(64))
        self.reads = 0  # API reads made, for tests and the log line

    def _api(self) -> StripeGateway:
        with self._gateway_lock:
            if self._gateway is None:
                # One gateway for the process, so its token bucket paces every read.
                self._gateway = self._gateway_factory()
            return self._gateway

    def evidence(self, note: ThinEventNotification) -> tuple[StripeEvent, bool] | None:
        """The event to decide on and whether it came from a read shared with an earlier
        notification; None for a type we do not act on (no read is made)."""
        classic = _classic(note.type)
        if classic is None:
            return None
        kind = expected_object_type(note.type)
        related = note.related_object
        if related is None or related.type != kind:
            raise InvalidPayload(
                f"{note.type} must name a related {kind}, got {related.type if related else 'none'}"
            )
        read, shared = self._read(kind, related.id, note.created_at)
        event_id = self._twin(note.id) if kind == "invoice" else note.id
        event_type = classic
        if kind == "invoice" and read.obj.get("status") == "paid":
            # The newest evidence: an invoice paid since the failure was notified.
            event_type = "invoice.paid"
        body = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": note.created_second,
            "livemode": note.livemode,
            "data": {"object": read.obj},
        }
        try:
            return StripeEvent.model_validate(body), shared
        except pydantic.ValidationError as exc:
            raise InvalidPayload(f"{note.type}: {related.id} is not readable: {exc}") from exc

    def _twin(self, event_id: str) -> str:
        """The id of the snapshot event Stripe created for the same change, if any."""
        twin = self._api().retrieve_thin_event(event_id).get("snapshot_event")
        self.reads += 1
        # Checked against Stripe's event id shape where the event is built.
        return twin if isinstance(twin, str) and twin else event_id

    def _read(self, kind: str, object_id: str, created_at: float) -> tuple[Read, bool]:
        key = (kind, object_id)
        # Single flight: concurrent deliveries for one object (push delivers to several
        # threads and instances) wait for the read in progress rather than each reading.
        with self._stripes[hash(key) % len(self._stripes)]:
            cached = self._cache.serving(key, created_at)
            if cached is not None:
                return cached, True
            return self._fetch(kind, object_id), False

    def _fetch(self, kind: str, object_id: str) -> Read:
        started = self._clock()
        api = self._api()
        if kind == "subscription":
            obj = api.retrieve_subscription(object_id)
        elif kind == "invoice":
            obj = api.retrieve_invoice(object_id)
        else:
            obj = api.retrieve_checkout_session(object_id)
        self.reads += 1
        read = Read(started_at=started, obj=obj)
        self._cache.store((kind, object_id), read)
        return read
