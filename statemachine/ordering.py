"""The out-of-order rule: is a snapshot newer than what we applied, older, or unknowable?

Stripe delivers events at least once, in any order, and `created` has one-second
resolution with distinct events sharing a second, so `created` alone can neither order
events nor detect duplicates. Duplicates are caught by event id (`recent_event_ids`).
For ordering we keep a watermark per customer: the subscription id, `created` of the
newest applied subscription snapshot, its status and period end. A subscription snapshot
(any `customer.subscription.*` event) is judged in this order:

1. First sight (no subscription yet): apply.
2. A different subscription id (a customer may hold several; access follows the best
   one, see statemachine/subscriptions.py): a paid live one (active, trialing, past_due)
   replaces an unpaid signup (incomplete) and an unpaid signup beside a paid one is stale,
   in whichever order they arrive. Otherwise: older `subscription.created` than the
   current one -> stale; the same second -> anomaly; newer and the current one is
   terminal or an unpaid signup -> apply as a new subscription; newer but already
   terminal itself -> stale (the live one stays); newer while the current one is live ->
   anomaly (two live subscriptions: reconcile picks the governing one).
3. Current subscription terminal (canceled, incomplete_expired): the same terminal
   snapshot again -> noop, anything else -> stale. Terminal states never reopen.
4. A terminal snapshot for the current subscription -> apply, whatever its time.
5. Identical to what we stored (status, items, quantities, cancel flags, periods):
   noop. Stripe sometimes emits two events for one change; the second emits nothing.
   If it is newer the watermark still advances, so an older different snapshot arriving
   later cannot roll the state back.
6. `customer.subscription.created` after any snapshot of the same subscription -> stale
   (a late `created` must never roll an active subscription back to incomplete).
7. `created` older than the watermark -> stale; newer -> apply.
8. The same second, decided only on evidence: the watermark is the `created` snapshot ->
   apply; leaving `incomplete` -> apply, returning to it -> stale; a later period end ->
   apply, an earlier one -> stale. Otherwise -> anomaly (never guess): the reconcile path
   reads the subscription from Stripe and applies that.

`created` is also bounded by the present: an event may be at most
MAX_CLOCK_SKEW_SECONDS ahead of our clock (`implausible_created`, applied by the
subscriber before anything is written, with its own clock passed in). An event from the
year 2100 would otherwise become the watermark and make every real update "stale". A
watermark already in the future (written before this rule) is lowered by reconcile
(`clamp_to_present`), which reads Stripe's current truth.

Invoice events only update dunning facts (when the payment failed, which invoice,
whether the customer must confirm a payment); they never move the status, which comes
only from subscription snapshots. An invoice of another subscription, or a failure or
action-required for an invoice already paid, is stale; a repeated `invoice.paid` is noop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.documents import BillingRecord
from schemas.stripe import Invoice, StripeEvent, Subscription, UpcomingInvoice
from statemachine.entitlements import items_of
from statemachine.states import TERMINAL

VerdictKind = Literal["apply", "stale", "noop", "anomaly"]

# How far ahead of our clock an event's `created` may be. Stripe creates an event before
# it signs a delivery of it, and the webhook refuses a signature timestamp more than
# WEBHOOK_TOLERANCE_SECONDS (300 s) away from its clock, so a genuine event is never
# more than that ahead; the subscriber sees it later still. Stripe test clocks date
# their events at the clock's frozen time: a test clock ahead of the present is refused
# the same way (test mode only; replay the dead letters once the present has caught up).
MAX_CLOCK_SKEW_SECONDS = 300


def implausible_created(created: int, now: float) -> str | None:
    """Why `created` can never be applied at `now` (it would pass the present), or None."""
    ahead = created - int(now)
    if ahead > MAX_CLOCK_SKEW_SECONDS:
        return (
            f"created {created} is {ahead} s ahead of our clock "
            f"(at most {MAX_CLOCK_SKEW_SECONDS} s allowed)"
        )
    return None


def clamp_to_present(at: int, now: int) -> int:
    """`at`, or `now` when `at` is past the present plus the skew.

    Reconcile applies this to the watermark and to the time the record was last
    evaluated at: a time beyond the skew came from an implausible event and would make
    every later real update stale (and every evaluation happen in that future). Within
    the skew it is kept: a watermark never goes backwards, or an older event could later
    override what reconcile read.
    """
    return now if at > now + MAX_CLOCK_SKEW_SECONDS else at


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    reason: str
    code: str = ""  # anomaly code
    new_subscription: bool = False
    advance: bool = False  # noop that still moves the watermark forward


def same_snapshot(record: BillingRecord, sub: Subscription) -> bool:
    return (
        record.status == sub.status
        and record.items == items_of(sub)
        and record.cancel_at_period_end == sub.cancel_at_period_end
        and record.cancel_at == sub.cancel_at
        and record.current_period_end == sub.period_end
        and record.trial_end == sub.trial_end
    )


def judge_subscription(record: BillingRecord, sub: Subscription, event: StripeEvent) -> Verdict:
    wm = record.watermark
    if record.subscription_id is None or wm is None:
        return Verdict("apply", "first subscription seen")
    if sub.id != record.subscription_id:
        return _other_subscription(record, sub)
    if record.status in TERMINAL:
        if sub.status == record.status:
            return Verdict("noop", f"already {record.status}")
        return Verdict("stale", f"subscription already {record.status}")
    if sub.status in TERMINAL:
        return Verdict("apply", f"terminal snapshot ({sub.status}) wins")
    newer = event.created > wm.created
    if same_snapshot(record, sub):
        return Verdict("noop", "snapshot changes nothing", advance=newer)
    if event.type == "customer.subscription.created":
        return Verdict("stale", "created after a later snapshot of the same subscription")
    if event.created < wm.created:
        return Verdict("stale", "older than the applied snapshot")
    if newer:
        return Verdict("apply", "newer than the applied snapshot")
    return _same_second(record, sub)


PAID_LIVE = frozenset({"active", "trialing", "past_due"})


def _other_subscription(record: BillingRecord, sub: Subscription) -> Verdict:
    # Several subscriptions: an unpaid signup (incomplete) never displaces a paid live one
    # and gives way to any newer or paid one, whatever order their events arrive in.
    if record.status == "incomplete" and sub.status in PAID_LIVE:
        return Verdict(
            "apply", "a paid subscription replaces an unpaid signup", new_subscription=True
        )
    if record.status in PAID_LIVE and sub.status == "incomplete":
        return Verdict("stale", "an unpaid signup beside a paid subscription; the paid one stays")
    current_created = record.subscription_created or 0
    if sub.created < current_created:
        return Verdict("stale", "an older subscription than the current one")
    if sub.created == current_created:
        return Verdict(
            "anomaly", "two subscriptions created in the same second", "ambiguous_subscription"
        )
    if record.status in TERMINAL:
        return Verdict("apply", "a newer subscription replaces an ended one", new_subscription=True)
    if sub.status in TERMINAL:
        return Verdict("stale", "a newer subscription that already ended; the live one stays")
    if record.status == "incomplete":
        return Verdict("apply", "a newer signup replaces an unpaid one", new_subscription=True)
    return Verdict(
        "anomaly",
        f"a second live subscription {sub.id} while {record.subscription_id} is {record.status}",
        "two_live_subscriptions",
    )


def _same_second(record: BillingRecord, sub: Subscription) -> Verdict:
    wm = record.watermark
    if wm is not None and wm.event_type == "customer.subscription.created":
        return Verdict("apply", "same second as the created snapshot, which is always first")
    if record.status == "incomplete":
        return Verdict("apply", "same second, leaves incomplete")
    if sub.status == "incomplete":
        return Verdict("stale", "same second, incomplete cannot follow another state")
    new_end, old_end = sub.period_end, record.current_period_end
    if new_end is not None and old_end is not None and new_end != old_end:
        if new_end > old_end:
            return Verdict("apply", "same second, later period end")
        return Verdict("stale", "same second, earlier period end")
    return Verdict(
        "anomaly",
        f"same second as the applied snapshot, {record.status} vs {sub.status}, no evidence",
        "ambiguous_order",
    )


def judge_invoice(
    record: BillingRecord, invoice: Invoice | UpcomingInvoice, event_type: str
) -> Verdict:
    sub_id = invoice.subscription_id
    if record.subscription_id and sub_id and sub_id != record.subscription_id:
        return Verdict("stale", "invoice of another subscription")
    if event_type == "invoice.upcoming":
        return Verdict("noop", "upcoming invoice is informational")
    if invoice.id in record.paid_invoice_ids:
        if event_type == "invoice.paid":
            return Verdict("noop", "invoice already recorded as paid")
        return Verdict("stale", "invoice already paid")
    return Verdict("apply", "dunning facts updated")
