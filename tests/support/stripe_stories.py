"""Issue 12's a-k: what Stripe does (its docs), as event sequences with the outcome Stripe's
state implies, and a runner interface so one story runs through the pure domain (unit)
and through the real Subscriber on the emulators (integration).

Each story is written from Stripe's documented behaviour, cited in its docstring; the
expected outcome is what Stripe's own objects say at the end (status, plan) plus our
stated grace policy, never what our code happened to do.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from infra.local.scenarios import DAY, START, STARTER, TEAM, Event, _Builder
from schemas.documents import BillingRecord, Override
from schemas.entitlements import AccessLevel
from schemas.stripe import Subscription

GRACE = 7 * DAY


@dataclass(frozen=True)
class Deliver:
    event: Event


@dataclass(frozen=True)
class Reevaluate:
    now: int


@dataclass(frozen=True)
class SetOverride:
    override: Override
    now: int


@dataclass(frozen=True)
class Reconcile:
    """Stripe's current subscriptions for the customer, read on purpose."""

    subscriptions: tuple[Event, ...]
    now: int


Step = Deliver | Reevaluate | SetOverride | Reconcile


@dataclass(frozen=True)
class Expect:
    status: str
    access: AccessLevel
    plan: str | None
    grace_until: int | None = None
    # Versions published over the whole story (None: not checked).
    versions: int | None = None
    no_open_anomaly: bool = True
    # The record must not be due for review at this instant (no stale deadline left).
    not_due_at: int | None = None


@dataclass(frozen=True)
class Story:
    letter: str
    name: str
    customer_id: str
    steps: tuple[Step, ...]
    expect: Expect
    # Events that must never be dead-lettered (checked by the emulator runner).
    checks: tuple[Callable[[BillingRecord], None], ...] = field(default=())


class Runner(Protocol):
    def deliver(self, event: Event) -> str: ...  # the decision kind

    def reevaluate(self, customer_id: str, now: int) -> None: ...

    def set_override(self, customer_id: str, override: Override, now: int) -> None: ...

    def reconcile(self, customer_id: str, subscriptions: list[Subscription], now: int) -> None: ...

    def record(self, customer_id: str) -> BillingRecord: ...

    def published_versions(self, customer_id: str) -> list[int]: ...

    def due(self, now: int) -> list[str]: ...


def run(story: Story, runner: Runner) -> BillingRecord:
    for step in story.steps:
        if isinstance(step, Deliver):
            kind = runner.deliver(step.event)
            assert kind != "dead_lettered", f"{story.name}: {step.event['type']} dead-lettered"
        elif isinstance(step, Reevaluate):
            runner.reevaluate(story.customer_id, step.now)
        elif isinstance(step, SetOverride):
            runner.set_override(story.customer_id, step.override, step.now)
        else:
            subs = [Subscription.model_validate(s) for s in step.subscriptions]
            runner.reconcile(story.customer_id, subs, step.now)
    record = runner.record(story.customer_id)
    want = story.expect
    got = (record.status, record.access, record.entitlements.plan if record.entitlements else None)
    assert got == (want.status, want.access, want.plan), f"{story.name}: {got}"
    if want.grace_until is not None:
        assert record.grace_until == want.grace_until, f"{story.name}: {record.grace_until}"
    if want.no_open_anomaly:
        assert record.anomalies == [], f"{story.name}: {record.anomalies}"
    if want.versions is not None:
        versions = runner.published_versions(story.customer_id)
        assert versions == list(range(1, want.versions + 1)), f"{story.name}: {versions}"
    if want.not_due_at is not None:
        assert story.customer_id not in runner.due(want.not_due_at), f"{story.name}: still due"
    for check in story.checks:
        check(record)
    return record


# -- building blocks -------------------------------------------------------------------


def _deliver_all(b: _Builder, since: int = 0) -> list[Step]:
    return [Deliver(e) for e in b.events[since:]]


def _grandfather(sub: Event) -> None:
    """What `transfer_lookup_key` leaves on an existing subscription's prices: the key is
    gone (now on the new price), the metadata catalog sync wrote is still there."""
    for item in sub["items"]["data"]:
        price = item["price"]
        ident = price["lookup_key"].removeprefix("dataface_").removesuffix("_monthly")
        price.update(lookup_key=None, metadata={"dataface_id": ident}, id=f"price_old_{ident}")


def _emit_sub(
    b: _Builder, event_type: str = "customer.subscription.updated", **changes: Any
) -> None:
    """Emit the subscription as it is, with changes, keeping the item prices untouched."""
    assert b.sub is not None
    previous = {k: b.sub.get(k) for k in changes}
    b.sub.update(changes)
    b.emit(event_type, b.sub, previous)


def _renew(b: _Builder) -> None:
    """Move every item's period one month on (current shape: periods on items)."""
    assert b.sub is not None
    for item in b.sub["items"]["data"]:
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] = item["current_period_end"] + 30 * DAY


def _grandfathered_renewal_failure(customer_id: str, account_id: str) -> tuple[_Builder, str]:
    """A Team customer whose price lost its lookup key to catalog sync, whose next
    renewal fails: Stripe moves the subscription to past_due on the old price."""
    b = _Builder(customer_id, account_id, START, legacy=False)
    b.start_active({TEAM: 1})
    assert b.sub is not None
    _grandfather(b.sub)
    b.at(START + 30 * DAY)
    _renew(b)
    failed = b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    _emit_sub(b, status="past_due")
    return b, failed


def story_a(customer_id: str = "cus_storya") -> Story:
    """Catalog sync moved the lookup key (transfer_lookup_key): the subscription keeps the
    old price, lookup_key null. Stripe then fails a renewal and the customer pays: access
    must follow, grace then recovery, on the grandfathered price."""
    b, failed = _grandfathered_renewal_failure(customer_id, "acct_a")
    b.at(START + 32 * DAY).invoice("invoice.paid", "paid", "subscription_cycle", failed)
    _emit_sub(b, status="active")
    return Story(
        "a",
        "grandfathered_price_keeps_granting",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("active", AccessLevel.FULL, "team"),
    )


def story_a_stops_paying(customer_id: str = "cus_storya2") -> Story:
    """The same grandfathered customer stops paying: retries exhausted, `unpaid`."""
    b, failed = _grandfathered_renewal_failure(customer_id, "acct_a2")
    b.at(START + 44 * DAY).invoice("invoice.payment_failed", "open", "subscription_cycle", failed)
    _emit_sub(b, status="unpaid")
    return Story(
        "a",
        "grandfathered_price_unpaid_loses_access",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("unpaid", AccessLevel.NONE, None),
    )


def story_b(customer_id: str = "cus_storyb") -> Story:
    """ "Leave the subscription past_due" after all retries fail: the next renewal invoice
    fails too while the first is unpaid. Grace runs from the streak's first failure."""
    b = _Builder(customer_id, "acct_b", START, legacy=False)
    b.start_active({STARTER: 1})
    first_failure = START + 30 * DAY
    b.at(first_failure)
    _renew(b)
    b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    _emit_sub(b, status="past_due")
    b.at(START + 60 * DAY)
    _renew(b)
    b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    _emit_sub(b)  # the renewal's updated snapshot, still past_due
    steps = [*_deliver_all(b), Reevaluate(START + 60 * DAY + 60)]
    return Story(
        "b",
        "second_renewal_failure_keeps_the_first_clock",
        customer_id,
        tuple(steps),
        Expect("past_due", AccessLevel.RESTRICTED, "starter", not_due_at=START + 60 * DAY + 120),
    )


def story_c(customer_id: str = "cus_storyc", via: str = "active") -> Story:
    """The Pause endpoint pauses an active (or past_due) subscription; while paused the
    customer has what `paused` grants, and resume brings it back (to past_due when the
    invoice is still open, per Stripe's resume endpoint)."""
    b = _Builder(customer_id, f"acct_c{via}", START, legacy=False)
    b.start_active({TEAM: 1})
    if via == "past_due":
        b.at(START + 30 * DAY)
        _renew(b)
        b.invoice("invoice.payment_failed", "open", "subscription_cycle")
        _emit_sub(b, status="past_due")
    b.at(START + 40 * DAY)
    _emit_sub(b, "customer.subscription.paused", status="paused")
    paused_steps = _deliver_all(b)
    mark = len(b.events)
    b.at(START + 45 * DAY)
    _emit_sub(b, "customer.subscription.resumed", status=via)
    resumed_steps = _deliver_all(b, mark)

    steps = (*paused_steps, *resumed_steps)
    expect = (
        Expect("active", AccessLevel.FULL, "team")
        if via == "active"
        else Expect("past_due", AccessLevel.RESTRICTED, "team")
    )
    return Story("c", f"pause_and_resume_from_{via}", customer_id, steps, expect)


def story_c_paused(customer_id: str = "cus_storycp") -> Story:
    """Paused by the endpoint and still paused: restricted, not full access."""
    b = _Builder(customer_id, "acct_cp", START, legacy=False)
    b.start_active({TEAM: 1})
    b.at(START + 40 * DAY)
    _emit_sub(b, "customer.subscription.paused", status="paused")
    return Story(
        "c",
        "paused_by_the_endpoint",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("paused", AccessLevel.RESTRICTED, "team"),
    )


def story_d(customer_id: str = "cus_storyd") -> Story:
    """A second subscription created `incomplete` beside an active one: the payer keeps
    access through its events and through reconcile (which reads both)."""
    b = _Builder(customer_id, "acct_d", START, legacy=False)
    b.start_active({TEAM: 1})
    paid = copy.deepcopy(b.sub)
    b.at(START + 5 * DAY)
    b.emit("customer.subscription.created", b.subscribe("incomplete", {STARTER: 1}))
    assert b.sub is not None and paid is not None
    steps = [*_deliver_all(b), Reconcile((paid, copy.deepcopy(b.sub)), START + 5 * DAY + 60)]
    return Story(
        "d",
        "incomplete_second_subscription_never_displaces_the_paid_one",
        customer_id,
        tuple(steps),
        Expect("active", AccessLevel.FULL, "team"),
    )


def story_e(customer_id: str = "cus_storye") -> Story:
    """`invoice.upcoming` previews the next invoice: Stripe sends it without an id."""
    b = _Builder(customer_id, "acct_e", START, legacy=False)
    b.start_active({STARTER: 1})
    b.at(START + 27 * DAY).invoice("invoice.upcoming", "draft", "upcoming")
    del b.events[-1]["data"]["object"]["id"]
    return Story(
        "e",
        "upcoming_invoice_without_id",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("active", AccessLevel.FULL, "starter"),
    )


def story_f(customer_id: str = "cus_storyf") -> Story:
    """A failed payment, then recovery without `invoice.paid` for that invoice (Stripe
    voids it when a pending update expires, and the subscription is active again). The
    next renewal failure a month later gets its own full grace."""
    b = _Builder(customer_id, "acct_f", START, legacy=False)
    b.start_active({STARTER: 1})
    b.at(START + 30 * DAY)
    _renew(b)
    b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    _emit_sub(b, status="past_due")
    b.at(START + 32 * DAY)
    _emit_sub(b, "customer.subscription.pending_update_expired", status="active")
    second_failure = START + 60 * DAY
    b.at(second_failure)
    _renew(b)
    # Same second; the past_due snapshot is delivered before the failure this time.
    _emit_sub(b, status="past_due")
    b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    return Story(
        "f",
        "recovery_without_invoice_paid_resets_the_clock",
        customer_id,
        tuple(_deliver_all(b)),
        Expect(
            "past_due", AccessLevel.GRACE, "starter", grace_until=second_failure + GRACE, versions=5
        ),
    )


def story_g(customer_id: str = "cus_storyg") -> Story:
    """Cancel at period end; the scheduled re-evaluation ends access at the period end;
    then Stripe's retries deliver an older event late. Access must stay ended, and the
    late event publishes nothing."""
    b = _Builder(customer_id, "acct_g", START, legacy=False)
    b.start_active({TEAM: 1})
    period_end = START + 30 * DAY
    b.at(START + 10 * DAY)
    _emit_sub(b, cancel_at_period_end=True)
    b.at(START + 20 * DAY).invoice("invoice.paid", "paid", "manual")
    late = b.events[-1]
    on_time = [Deliver(e) for e in b.events[:-1]]
    steps = (*on_time, Reevaluate(period_end + 60), Deliver(late))
    return Story(
        "g",
        "late_event_does_not_regrant_after_period_end",
        customer_id,
        steps,
        Expect("active", AccessLevel.NONE, None, versions=4),
    )


def story_g_grace(customer_id: str = "cus_storyg2") -> Story:
    """Grace ends by re-evaluation; a late, older snapshot must not re-grant it."""
    b = _Builder(customer_id, "acct_g2", START, legacy=False)
    b.start_active({STARTER: 1})
    b.at(START + 30 * DAY)
    _renew(b)
    b.invoice("invoice.payment_failed", "open", "subscription_cycle")
    _emit_sub(b, status="past_due")
    failed = b.events[-2]["data"]["object"]["id"]
    b.at(START + 33 * DAY).invoice("invoice.payment_failed", "open", "subscription_cycle", failed)
    late = b.events[-1]  # Smart Retries' second attempt, delivered after grace ended
    steps = (*[Deliver(e) for e in b.events[:-1]], Reevaluate(START + 38 * DAY), Deliver(late))
    return Story(
        "g",
        "late_event_does_not_regrant_after_grace",
        customer_id,
        steps,
        Expect("past_due", AccessLevel.RESTRICTED, "starter", versions=4),
    )


def story_h(customer_id: str = "cus_storyh") -> Story:
    """An abandoned `incomplete` signup, then a new subscription that is paid, with the
    abandoned one expiring 23 h after it began (its events may arrive in any order)."""
    b = _Builder(customer_id, "acct_h", START, legacy=False)
    b.emit("customer.subscription.created", b.subscribe("incomplete", {TEAM: 1}))
    abandoned = copy.deepcopy(b.sub)
    b.at(START + 3600)
    b.start_active({STARTER: 1})
    b.at(START + 23 * 3600)
    assert abandoned is not None
    abandoned["status"] = "incomplete_expired"
    b.emit("customer.subscription.updated", abandoned, {"status": "incomplete"})
    return Story(
        "h",
        "abandoned_signup_then_paid_subscription",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("active", AccessLevel.FULL, "starter"),
    )


def story_i(customer_id: str = "cus_storyi") -> Story:
    """An operator override lapses between two runs of the re-evaluation job (an event
    after its expiry already showed the customer without it)."""
    b = _Builder(customer_id, "acct_i", START, legacy=False)
    b.start_active({STARTER: 1})
    expires = START + 2 * DAY
    override = Override(
        access=AccessLevel.FULL,
        reason="support ticket 42",
        actor="ops@test",
        expires_at=expires,
        created_at=START + DAY,
    )
    mark = len(b.events)
    b.at(expires + 100).invoice("invoice.paid", "paid", "manual")
    steps = (
        *_deliver_all(b)[:mark],
        SetOverride(override, START + DAY),
        *_deliver_all(b, mark),
        Reevaluate(expires + 200),
    )
    return Story(
        "i",
        "lapsed_override_is_cleared",
        customer_id,
        steps,
        Expect("active", AccessLevel.FULL, "starter", not_due_at=expires + 300),
        checks=(_no_override,),
    )


def _no_override(record: BillingRecord) -> None:
    assert record.override is None, record.override


def story_j(customer_id: str = "cus_storyj") -> Story:
    """Items in the pre-Prices shape: `plan`, no `price` (localstripe, old fixtures)."""
    b = _Builder(customer_id, "acct_j", START, legacy=True)
    b.start_active({TEAM: 1})
    for event in b.events:
        obj = event["data"]["object"]
        for item in obj.get("items", {}).get("data", []):
            price = item.pop("price")
            item["plan"] = {
                "id": price["id"],
                "object": "plan",
                "amount": price["unit_amount"],
                "interval": "month",
                "metadata": {"dataface_id": "team"},
            }
    return Story(
        "j",
        "pre_prices_items",
        customer_id,
        tuple(_deliver_all(b)),
        Expect("active", AccessLevel.FULL, "team"),
    )


def story_k(customer_id: str = "cus_storyk", account_id: str = "acct_k") -> Story:
    """Two paid live subscriptions: access is that of the better one (stated rule), once
    the anomaly the second one raises is reconciled."""
    b = _Builder(customer_id, account_id, START, legacy=False)
    b.start_active({TEAM: 1})
    team = copy.deepcopy(b.sub)
    b.at(START + 5 * DAY)
    b.start_active({STARTER: 1})
    assert team is not None and b.sub is not None
    steps = [*_deliver_all(b), Reconcile((team, copy.deepcopy(b.sub)), START + 5 * DAY + 60)]
    return Story(
        "k",
        "several_paid_subscriptions_best_one_governs",
        customer_id,
        tuple(steps),
        Expect("active", AccessLevel.FULL, "team"),
    )


STORIES: tuple[Callable[[], Story], ...] = (
    story_a,
    story_a_stops_paying,
    story_b,
    story_c,
    lambda: story_c("cus_storycpd", via="past_due"),
    story_c_paused,
    story_d,
    story_e,
    story_f,
    story_g,
    story_g_grace,
    story_h,
    story_i,
    story_j,
    story_k,
)
