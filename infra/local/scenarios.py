"""Realistic Stripe event sequences for one customer, with the outcome they must produce.

Used by the tests, the demo and the benchmarks. Each scenario function takes the
customer id, account id and start time, so callers can make many distinct customers
(`many()`). Events are full envelopes shaped like Stripe's (see
../shared/stripe-fixtures/): current API shape by default (period on each subscription
item, invoice subscription under `parent.subscription_details`), the older shape
(period on the subscription, `invoice.subscription`) where `legacy=True`. Some events
share a second, as Stripe's do. The expected outcome is written by hand per scenario,
not computed by the domain.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from schemas.entitlements import AccessLevel
from statemachine.catalog import CATALOG

DAY = 86_400
API_VERSION = "2025-08-27.basil"
LEGACY_API_VERSION = "2024-06-20"
START = 1_767_225_600  # 2026-01-01T00:00:00Z

STARTER = "dataface_starter_monthly"
TEAM = "dataface_team_monthly"
BUSINESS = "dataface_business_monthly"
CUSTOM_RULES = "dataface_addon_custom_rules_monthly"
LINEAGE = "dataface_addon_lineage_monthly"
SEAT = "dataface_addon_seat_monthly"

Event = dict[str, Any]


@dataclass(frozen=True)
class Expected:
    status: str
    access: AccessLevel
    plan: str | None
    add_ons: tuple[str, ...] = ()
    seats: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    customer_id: str
    account_id: str
    events: tuple[Event, ...]
    # Stripe's current subscription object at the end (what a reconcile read returns).
    final_subscription: Event | None
    end_time: int
    expected: Expected


def _unit_amount(lookup_key: str) -> int:
    entry = CATALOG.by_lookup_key(lookup_key)
    return entry.monthly_amount_cents if entry is not None else 0


class _Builder:
    """Keeps ids, timestamps and the subscription object consistent across events."""

    def __init__(self, customer_id: str, account_id: str, start: int, legacy: bool) -> None:
        self.customer_id = customer_id
        self.account_id = account_id
        self.now = start
        self.legacy = legacy
        self.tag = "".join(ch for ch in customer_id.removeprefix("cus_") if ch.isalnum())
        self.counter = 0
        self.events: list[Event] = []
        self.sub: Event | None = None

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.tag}{self.counter:03d}"

    def at(self, when: int) -> _Builder:
        self.now = when
        return self

    def emit(self, event_type: str, obj: Event, previous: Event | None = None) -> None:
        data: Event = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        self.events.append(
            {
                "id": self._id("evt"),
                "object": "event",
                "api_version": LEGACY_API_VERSION if self.legacy else API_VERSION,
                "created": self.now,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
                "data": data,
            }
        )

    # Subscription -------------------------------------------------------------------

    def _items(self, prices: dict[str, int], start: int, end: int) -> Event:
        data = []
        for key, quantity in prices.items():
            item: Event = {
                "id": f"si_{self.tag}_{key.removeprefix('dataface_')}",
                "object": "subscription_item",
                "price": {
                    "id": f"price_{key}",
                    "object": "price",
                    "lookup_key": key,
                    "unit_amount": _unit_amount(key),
                    "currency": "usd",
                    "metadata": {},
                    "recurring": {"interval": "month", "interval_count": 1},
                },
                "quantity": quantity,
                "metadata": {},
            }
            if not self.legacy:
                item["current_period_start"] = start
                item["current_period_end"] = end
            data.append(item)
        return {"object": "list", "data": data, "has_more": False}

    def subscribe(self, status: str, prices: dict[str, int], trial_days: int = 0) -> Event:
        start, end = self.now, self.now + (trial_days or 30) * DAY
        sub: Event = {
            "id": self._id("sub"),
            "object": "subscription",
            "customer": self.customer_id,
            "status": status,
            "created": self.now,
            "items": self._items(prices, start, end),
            "cancel_at_period_end": False,
            "cancel_at": None,
            "canceled_at": None,
            "ended_at": None,
            "trial_end": end if trial_days else None,
            "latest_invoice": None,
            "collection_method": "charge_automatically",
            "metadata": {"account_id": self.account_id},
            "pending_update": None,
        }
        if self.legacy:
            sub["current_period_start"], sub["current_period_end"] = start, end
        self.sub = sub
        return sub

    def _period(self) -> tuple[int, int]:
        assert self.sub is not None
        if self.legacy:
            return self.sub["current_period_start"], self.sub["current_period_end"]
        first = self.sub["items"]["data"][0]
        return first["current_period_start"], first["current_period_end"]

    def update(self, event_type: str = "customer.subscription.updated", **changes: Any) -> None:
        """Change the subscription (prices=..., new_period=True, any field) and emit it."""
        assert self.sub is not None
        previous = {k: self.sub.get(k) for k in changes if k not in ("prices", "new_period")}
        start, end = self._period()
        if changes.pop("new_period", False):
            start, end = end, end + 30 * DAY
            if self.legacy:
                self.sub["current_period_start"], self.sub["current_period_end"] = start, end
        prices = changes.pop("prices", None)
        if prices is None:
            prices = {i["price"]["lookup_key"]: i["quantity"] for i in self.sub["items"]["data"]}
        self.sub["items"] = self._items(prices, start, end)
        self.sub.update(changes)
        self.emit(event_type, self.sub, previous)

    # Invoices and checkout ----------------------------------------------------------

    def invoice(self, event_type: str, status: str, reason: str, invoice_id: str = "") -> str:
        assert self.sub is not None
        invoice_id = invoice_id or self._id("in")
        self.sub["latest_invoice"] = invoice_id
        inv: Event = {
            "id": invoice_id,
            "object": "invoice",
            "customer": self.customer_id,
            "status": status,
            "billing_reason": reason,
            "created": self.now,
            "attempt_count": 1,
            "period_end": self._period()[1],
            "lines": {"object": "list", "data": [], "has_more": False},
        }
        if self.legacy:
            inv["subscription"] = self.sub["id"]
        else:
            inv["parent"] = {
                "type": "subscription_details",
                "subscription_details": {"subscription": self.sub["id"], "metadata": {}},
                "quote_details": None,
            }
        self.emit(event_type, inv)
        return invoice_id

    def checkout(self) -> None:
        assert self.sub is not None
        self.emit(
            "checkout.session.completed",
            {
                "id": self._id("cs_test"),
                "object": "checkout.session",
                "customer": self.customer_id,
                "client_reference_id": self.account_id,
                "subscription": self.sub["id"],
                "mode": "subscription",
                "status": "complete",
                "payment_status": "paid",
                "metadata": {},
            },
        )

    def start_active(self, prices: dict[str, int]) -> None:
        """Checkout straight to active: created(incomplete) and updated(active) share a second."""
        self.emit("customer.subscription.created", self.subscribe("incomplete", prices))
        self.invoice("invoice.paid", "paid", "subscription_create")
        self.update(status="active")
        self.checkout()

    def done(self, name: str, expected: Expected, end_time: int | None = None) -> Scenario:
        return Scenario(
            name=name,
            customer_id=self.customer_id,
            account_id=self.account_id,
            events=tuple(self.events),
            final_subscription=copy.deepcopy(self.sub),
            end_time=end_time if end_time is not None else self.now + 1,
            expected=expected,
        )


def trial_converts(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.emit("customer.subscription.created", b.subscribe("trialing", {STARTER: 1}, trial_days=30))
    b.invoice("invoice.paid", "paid", "subscription_create")
    b.checkout()
    b.at(start + 27 * DAY).update("customer.subscription.trial_will_end")
    b.invoice("invoice.upcoming", "draft", "subscription_cycle", invoice_id="upcoming_in")
    b.at(start + 30 * DAY).invoice("invoice.paid", "paid", "subscription_cycle")
    b.update(status="active", trial_end=start + 30 * DAY, new_period=True)
    return b.done("trial_converts", Expected("active", AccessLevel.FULL, "starter", seats=3))


def trial_paused(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.emit("customer.subscription.created", b.subscribe("trialing", {TEAM: 1}, trial_days=30))
    b.checkout()
    b.at(start + 27 * DAY).update("customer.subscription.trial_will_end")
    b.at(start + 30 * DAY).update(status="paused")
    b.update("customer.subscription.paused")  # the same change, a second event
    return b.done("trial_paused", Expected("paused", AccessLevel.RESTRICTED, "team", seats=10))


def checkout_active(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=True)
    b.start_active({BUSINESS: 1})
    return b.done("checkout_active", Expected("active", AccessLevel.FULL, "business", seats=25))


def payment_failure_recovery(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({TEAM: 1})
    b.at(start + 30 * DAY)
    failed = b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    b.update(status="past_due", new_period=True)
    b.at(start + 33 * DAY).invoice("invoice.payment_failed", "open", "subscription_cycle", failed)
    b.at(start + 35 * DAY).invoice("invoice.paid", "paid", "subscription_cycle", failed)
    b.update(status="active")
    return b.done(
        "payment_failure_recovery", Expected("active", AccessLevel.FULL, "team", seats=10)
    )


def failure_unpaid_canceled(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=True)
    b.start_active({STARTER: 1})
    b.at(start + 30 * DAY)
    failed = b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    b.update(status="past_due", new_period=True)
    for retry_day in (33, 37, 44):
        b.at(start + retry_day * DAY)
        b.invoice("invoice.payment_failed", "open", "subscription_cycle", failed)
    b.update(status="unpaid")
    b.at(start + 60 * DAY).update(
        "customer.subscription.deleted",
        status="canceled",
        canceled_at=start + 60 * DAY,
        ended_at=start + 60 * DAY,
    )
    return b.done("failure_unpaid_canceled", Expected("canceled", AccessLevel.NONE, None))


def upgrade(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({STARTER: 1})
    b.at(start + 10 * DAY).update(prices={TEAM: 1})
    b.invoice("invoice.paid", "paid", "subscription_update")
    return b.done("upgrade", Expected("active", AccessLevel.FULL, "team", seats=10))


def pending_upgrade(customer_id: str, account_id: str, start: int = START) -> Scenario:
    """An upgrade with payment_behavior=pending_if_incomplete: applied once paid."""
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({TEAM: 1})
    b.at(start + 8 * DAY).update(pending_update={"expires_at": start + 9 * DAY})
    b.at(start + 8 * DAY + 60).invoice("invoice.paid", "paid", "subscription_update")
    b.update(
        "customer.subscription.pending_update_applied", prices={BUSINESS: 1}, pending_update=None
    )
    b.update()  # Stripe also sends .updated for the same change
    return b.done("pending_upgrade", Expected("active", AccessLevel.FULL, "business", seats=25))


def pending_upgrade_expired(customer_id: str, account_id: str, start: int = START) -> Scenario:
    """The upgrade's payment fails asynchronously: the subscription stays active on its plan."""
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({STARTER: 1})
    b.at(start + 8 * DAY).update(pending_update={"expires_at": start + 9 * DAY})
    b.at(start + 8 * DAY + 5).invoice("invoice.payment_failed", "open", "subscription_update")
    b.at(start + 9 * DAY).update(
        "customer.subscription.pending_update_expired", pending_update=None
    )
    return b.done(
        "pending_upgrade_expired", Expected("active", AccessLevel.FULL, "starter", seats=3)
    )


def downgrade_at_period_end(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({BUSINESS: 1})
    b.at(start + 30 * DAY).invoice("invoice.paid", "paid", "subscription_cycle")
    b.update(prices={STARTER: 1}, new_period=True)
    return b.done(
        "downgrade_at_period_end", Expected("active", AccessLevel.FULL, "starter", seats=3)
    )


def addons_and_seats(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({TEAM: 1})
    b.at(start + 5 * DAY).update(prices={TEAM: 1, CUSTOM_RULES: 1, SEAT: 2})
    b.invoice("invoice.paid", "paid", "subscription_update")
    b.at(start + 12 * DAY).update(prices={TEAM: 1, CUSTOM_RULES: 1, SEAT: 5, LINEAGE: 1})
    b.at(start + 20 * DAY).update(prices={TEAM: 1, SEAT: 5, LINEAGE: 1})
    return b.done(
        "addons_and_seats",
        Expected("active", AccessLevel.FULL, "team", add_ons=("extra_seat", "lineage"), seats=15),
    )


def cancel_at_period_end(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=True)
    b.start_active({STARTER: 1})
    b.at(start + 10 * DAY).update(cancel_at_period_end=True, cancel_at=start + 30 * DAY)
    b.at(start + 30 * DAY).update(
        "customer.subscription.deleted",
        status="canceled",
        canceled_at=start + 30 * DAY,
        ended_at=start + 30 * DAY,
    )
    return b.done("cancel_at_period_end", Expected("canceled", AccessLevel.NONE, None))


def immediate_cancel(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({TEAM: 1})
    b.at(start + 5 * DAY).update(
        "customer.subscription.deleted",
        status="canceled",
        canceled_at=start + 5 * DAY,
        ended_at=start + 5 * DAY,
    )
    return b.done("immediate_cancel", Expected("canceled", AccessLevel.NONE, None))


def cancel_then_resubscribe(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.start_active({STARTER: 1})
    b.at(start + 5 * DAY).update(
        "customer.subscription.deleted", status="canceled", canceled_at=start + 5 * DAY
    )
    b.at(start + 6 * DAY).start_active({BUSINESS: 1})
    return b.done(
        "cancel_then_resubscribe", Expected("active", AccessLevel.FULL, "business", seats=25)
    )


def pause_resume(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.emit("customer.subscription.created", b.subscribe("trialing", {STARTER: 1}, trial_days=30))
    b.checkout()
    b.at(start + 30 * DAY).update(status="paused")
    b.at(start + 34 * DAY).update("customer.subscription.resumed", status="active", new_period=True)
    b.invoice("invoice.paid", "paid", "subscription_cycle")
    b.update()  # the .updated twin of .resumed, same second
    return b.done("pause_resume", Expected("active", AccessLevel.FULL, "starter", seats=3))


def signup_expires(customer_id: str, account_id: str, start: int = START) -> Scenario:
    b = _Builder(customer_id, account_id, start, legacy=False)
    b.emit("customer.subscription.created", b.subscribe("incomplete", {TEAM: 1}))
    b.invoice("invoice.payment_action_required", "open", "subscription_create")
    b.at(start + 23 * 3600).update(status="incomplete_expired")
    return b.done("signup_expires", Expected("incomplete_expired", AccessLevel.NONE, None))


ScenarioFn = Callable[..., Scenario]

SCENARIOS: dict[str, ScenarioFn] = {
    fn.__name__: fn
    for fn in (
        trial_converts,
        trial_paused,
        checkout_active,
        payment_failure_recovery,
        failure_unpaid_canceled,
        upgrade,
        pending_upgrade,
        pending_upgrade_expired,
        downgrade_at_period_end,
        addons_and_seats,
        cancel_at_period_end,
        immediate_cancel,
        cancel_then_resubscribe,
        pause_resume,
        signup_expires,
    )
}


def build(name: str, customer_id: str = "", account_id: str = "", start: int = START) -> Scenario:
    customer_id = customer_id or f"cus_{name.replace('_', '')[:12]}"
    return SCENARIOS[name](customer_id, account_id or f"acct_{customer_id[4:]}", start)


def many(count: int, start: int = START, prefix: str = "bench") -> Iterator[Scenario]:
    """`count` distinct customers cycling through every scenario (cheap: no I/O)."""
    names = sorted(SCENARIOS)
    for i in range(count):
        name = names[i % len(names)]
        customer_id = f"cus_{prefix}{i:07d}"
        yield SCENARIOS[name](customer_id, f"acct_{prefix}{i:07d}", start + (i % 3600))


def subscription_event(
    event_type: str,
    created: int,
    *,
    event_id: str = "",
    sub_id: str = "sub_one",
    status: str = "active",
    prices: dict[str, int] | None = None,
    customer_id: str = "cus_one",
    sub_created: int = START,
    period_end: int | None = None,
    **fields: Any,
) -> Event:
    """One subscription event in isolation, for table-driven tests of single moves."""
    b = _Builder(customer_id, "acct_one", sub_created, legacy=False)
    sub = b.subscribe(status, prices or {STARTER: 1})
    sub["id"] = sub_id
    if period_end is not None:
        for item in sub["items"]["data"]:
            item["current_period_end"] = period_end
    sub.update(fields)
    b.at(created).emit(event_type, sub)
    event = b.events[-1]
    event["id"] = event_id or f"evt_{event_type.replace('.', '_')}_{created}_{status}"
    return event


def invoice_event(
    event_type: str,
    created: int,
    invoice_id: str,
    *,
    event_id: str = "",
    sub_id: str = "sub_one",
    customer_id: str = "cus_one",
) -> Event:
    """One invoice event in isolation (current API shape)."""
    b = _Builder(customer_id, "acct_one", created, legacy=False)
    b.subscribe("active", {STARTER: 1})["id"] = sub_id
    b.invoice(event_type, "open", "subscription_cycle", invoice_id)
    event = b.events[-1]
    event["id"] = event_id or f"evt_{event_type.replace('.', '_')}_{invoice_id}_{created}"
    return event
