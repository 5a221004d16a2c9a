"""The pure decision functions: one input (event, Stripe read, clock, operator) -> Decision.

Nothing here reads a clock: time is the event's `created` or the caller's `now`.
Every function works on a deep copy, so the caller's record is never mutated.
An anomaly never changes status, access or entitlements: the record only gains the
anomaly (bounded list) and the event id, and `reconcile` is what resolves it.
"""

from __future__ import annotations

from typing import Any

from schemas.documents import Anomaly, BillingRecord, Override, Watermark
from schemas.entitlements import AccessLevel, CurrentEntitlements, EntitlementChanged
from schemas.stripe import CheckoutSession, Invoice, StripeEvent, Subscription, UpcomingInvoice
from statemachine import entitlements, states
from statemachine.decision import Decision, Policy, Transition
from statemachine.machine import MachineError, fire, trigger_for
from statemachine.ordering import clamp_to_present, judge_invoice, judge_subscription

MAX_EVENT_IDS = 50
MAX_ANOMALIES = 20
MAX_PAID_INVOICES = 20

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    }
)
INVOICE_EVENTS = frozenset(
    {
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "invoice.upcoming",
    }
)
HANDLED_EVENT_TYPES = frozenset(
    {"checkout.session.completed", *SUBSCRIPTION_EVENTS, *INVOICE_EVENTS}
)


def is_handled_event_type(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES


def _visible(record: BillingRecord) -> tuple[Any, ...]:
    return (
        record.status,
        record.access,
        record.entitlements,
        record.message,
        record.grace_until,
        record.access_until,
        record.override_active,
        record.account_id,
    )


def _finish(
    before: BillingRecord,
    after: BillingRecord,
    now: int,
    policy: Policy,
    *,
    kind: str,
    reason: str,
    transition: Transition | None = None,
) -> Decision:
    """Recompute what downstream sees; bump the version by one if it changed.

    The view is taken at the latest instant this record has been evaluated at, never
    earlier: a late event (Stripe's retries, catch-up, a replay) describes the past, and
    must not re-grant access that a deadline already removed.
    """
    now = max(now, before.updated_at)
    if after.override is not None and now >= after.override.expires_at:
        after.override = None  # lapsed: cleared, so nothing keeps it due for review
    view = states.view(after, now, policy.grace_seconds)
    items = after.items
    if view.override_active and not items:
        items = entitlements.base_plan_items(policy.catalog)
    after.access = view.access
    after.entitlements = entitlements.compute(view.access, items, policy.catalog)
    after.message = view.message
    after.grace_until = view.grace_until
    after.access_until = view.access_until
    after.override_active = view.override_active
    after.updated_at = max(after.updated_at, now)
    # A customer we never told anything, who still has nothing, needs no message.
    silent = after.version == 0 and after.status == "none" and not after.override_active
    changed = _visible(before) != _visible(after) and not silent
    if changed:
        after.version = before.version + 1
    return Decision(
        kind=kind,  # type: ignore[arg-type]
        record=after,
        reason=reason,
        transition=transition,
        entitlements_changed=changed,
    )


def _anomaly(
    record: BillingRecord,
    code: str,
    detail: str,
    at: int,
    event: StripeEvent | None = None,
    *,
    cause: tuple[str, str] | None = None,  # (id, type) of a cause that is not an event
) -> Decision:
    event_id, event_type = (event.id, event.type) if event else cause or (None, None)
    anomaly = Anomaly(code=code, detail=detail, event_id=event_id, event_type=event_type, at=at)
    record.anomalies = [*record.anomalies, anomaly][-MAX_ANOMALIES:]
    if record.anomaly_open_since is None:
        record.anomaly_open_since = at
    return Decision(kind="anomaly", record=record, reason=detail, anomaly=anomaly)


def decide(record: BillingRecord, event: StripeEvent, policy: Policy) -> Decision:
    """What one Stripe event does to the customer's current record, at `event.created`.

    Illegal or ambiguous moves come back as kind "anomaly", never as an exception. The
    only thing that raises is an event whose object our models cannot read
    (pydantic.ValidationError): retrying cannot fix that, the caller dead-letters it.
    """
    if event.id in record.recent_event_ids:
        return Decision(kind="duplicate", record=record, reason="event already processed")
    if not is_handled_event_type(event.type):
        return Decision(kind="ignored", record=record, reason=f"{event.type} is not ours")
    before = record
    rec = record.model_copy(deep=True)
    rec.recent_event_ids = [*rec.recent_event_ids, event.id][-MAX_EVENT_IDS:]
    if event.type == "checkout.session.completed":
        return _checkout(rec, CheckoutSession.model_validate(event.data.object), event)
    if event.type in SUBSCRIPTION_EVENTS:
        sub = Subscription.model_validate(event.data.object)
        return _subscription(before, rec, sub, event, policy)
    if event.type == "invoice.upcoming":
        # A preview without an id (Stripe sends none): it informs, it changes nothing.
        upcoming = UpcomingInvoice.model_validate(event.data.object)
        verdict = judge_invoice(rec, upcoming, event.type)
        if verdict.kind == "stale":
            return Decision(kind="stale", record=rec, reason=verdict.reason)
        return Decision(kind="noop", record=rec, reason=verdict.reason)
    return _invoice(before, rec, Invoice.model_validate(event.data.object), event, policy)


def _checkout(rec: BillingRecord, session: CheckoutSession, event: StripeEvent) -> Decision:
    account = session.client_reference_id or session.metadata.get("account_id")
    if account and rec.account_id and account != rec.account_id:
        return _anomaly(
            rec,
            "account_mismatch",
            f"checkout names account {account}, customer is linked to {rec.account_id}",
            event.created,
            event,
        )
    if not account or account == rec.account_id:
        return Decision(kind="noop", record=rec, reason="checkout adds nothing new")
    rec.account_id = account
    changed = rec.version > 0
    if changed:
        # Entitlements were already published without the account: publish it linked.
        rec.version += 1
    return Decision(
        kind="applied", record=rec, reason="account linked", entitlements_changed=changed
    )


def _adopt(rec: BillingRecord, sub: Subscription, at: int, event_id: str, event_type: str) -> None:
    """Store the snapshot's facts and move the watermark to it."""
    if sub.id != rec.subscription_id:
        if rec.subscription_id is not None:
            # Dunning facts belong to the old subscription's invoices.
            _clear_streak(rec)
        rec.subscription_id = sub.id
        rec.subscription_created = sub.created
    elif _recovered(rec, sub, at):
        # Stripe can recover without an `invoice.paid` for the failed invoice (a pending
        # update expired, the invoice was voided): the old clock must not carry over.
        _clear_streak(rec)
    if sub.status == "past_due" and rec.status != "past_due":
        rec.past_due_since = at
    elif sub.status != "past_due":
        rec.past_due_since = None
    rec.status = sub.status
    rec.items = entitlements.items_of(sub)
    rec.cancel_at_period_end = sub.cancel_at_period_end
    rec.cancel_at = sub.cancel_at
    rec.current_period_end = sub.period_end
    rec.trial_end = sub.trial_end
    if not rec.account_id and sub.metadata.get("account_id"):
        rec.account_id = sub.metadata["account_id"]
    rec.watermark = Watermark(
        subscription_id=sub.id,
        created=at,
        event_id=event_id,
        event_type=event_type,
        status=sub.status,
        period_end=sub.period_end,
    )


def _recovered(rec: BillingRecord, sub: Subscription, at: int) -> bool:
    if sub.status not in ("active", "trialing") or rec.payment_failed_at is None:
        return False
    # Leaving a dunning status is proof; an active snapshot from the failure's second is
    # not (a renewal's `updated` and its failure share a second).
    return rec.status in ("past_due", "unpaid", "paused") or at > rec.payment_failed_at


def _price_problems(sub: Subscription, policy: Policy) -> list[str]:
    # Only a status that grants something needs priced items; a dead one grants nothing.
    if states.STATE_BY_STATUS[sub.status].access is AccessLevel.NONE:
        return []
    return entitlements.problems(entitlements.items_of(sub), policy.catalog)


def _subscription(
    before: BillingRecord,
    rec: BillingRecord,
    sub: Subscription,
    event: StripeEvent,
    policy: Policy,
) -> Decision:
    verdict = judge_subscription(rec, sub, event)
    if verdict.kind == "anomaly":
        return _anomaly(rec, verdict.code, verdict.reason, event.created, event)
    if verdict.kind != "apply":
        if verdict.advance and rec.watermark is not None:
            rec.watermark = rec.watermark.model_copy(
                update={"created": event.created, "event_id": event.id, "event_type": event.type}
            )
        return Decision(kind=verdict.kind, record=rec, reason=verdict.reason)
    found = _price_problems(sub, policy)
    if found:
        return _anomaly(rec, "unknown_price", "; ".join(found), event.created, event)
    source = rec.status
    try:
        if verdict.new_subscription:
            fire(source, "new_subscription", newer_subscription=True)
            trigger = trigger_for("none", sub.status)
            fire("none", trigger)
            trigger = f"new_subscription+{trigger}"
        else:
            trigger = trigger_for(source, sub.status)
            fire(source, trigger)
    except MachineError as exc:
        return _anomaly(
            rec, "illegal_transition", f"{source} -> {sub.status}: {exc}", event.created, event
        )
    _adopt(rec, sub, event.created, event.id, event.type)
    return _finish(
        before,
        rec,
        event.created,
        policy,
        kind="applied",
        reason=verdict.reason,
        transition=Transition(trigger=trigger, source=source, dest=sub.status),
    )


def _invoice(
    before: BillingRecord, rec: BillingRecord, invoice: Invoice, event: StripeEvent, policy: Policy
) -> Decision:
    verdict = judge_invoice(rec, invoice, event.type)
    if verdict.kind != "apply":
        return Decision(kind=verdict.kind, record=rec, reason=verdict.reason)
    if event.type == "invoice.paid":
        rec.paid_invoice_ids = [*rec.paid_invoice_ids, invoice.id][-MAX_PAID_INVOICES:]
        rec.last_paid_invoice_id = invoice.id
        if _ends_streak(rec, invoice.id):
            _clear_streak(rec)
    elif event.type == "invoice.payment_action_required":
        rec.payment_action_required = True
        rec.failed_invoice_id = rec.failed_invoice_id or invoice.id
    elif rec.payment_failed_at is None:
        rec.failed_invoice_id = invoice.id
        rec.payment_failed_at = event.created
    else:
        # A streak is open (a retry of its invoice, or the next renewal failing while it
        # is unpaid): grace runs from the streak's first failure, never restarts.
        rec.payment_failed_at = min(rec.payment_failed_at, event.created)
    return _finish(before, rec, event.created, policy, kind="applied", reason=verdict.reason)


def _ends_streak(rec: BillingRecord, invoice_id: str) -> bool:
    """Paying the streak's invoice ends it. Paying another one does not: when that makes
    the subscription current, its `active` snapshot ends the streak (`_recovered`)."""
    return rec.failed_invoice_id in (None, invoice_id)


def _clear_streak(rec: BillingRecord) -> None:
    rec.payment_failed_at = rec.failed_invoice_id = None
    rec.payment_action_required = False


def account_taken(
    current: BillingRecord, decision: Decision, owner: str, at: int, cause: tuple[str, str]
) -> Decision:
    """`decision` would link its record to an account `owner` is already linked to.

    Account links are first-writer-wins: a second customer naming a linked account is
    never a takeover (portal and plan changes for the account keep acting on `owner`,
    downstream never sees the account on this customer's messages). Like every anomaly,
    nothing of the decision is applied: the record only gains the anomaly and the event
    id, and on-call decides whom the account belongs to (runbooks/anomalies.md).
    """
    rec = current.model_copy(deep=True)
    rec.recent_event_ids = list(decision.record.recent_event_ids)
    claimed = decision.record.account_id
    detail = (
        f"{rec.customer_id} names account {claimed}, which is linked to {owner}; "
        "the first link stands"
    )
    return _anomaly(rec, "account_taken", detail, at, cause=cause)


def reconcile(
    record: BillingRecord, subscription: Subscription | None, now: int, policy: Policy
) -> Decision:
    """Apply Stripe's current subscription (None: the customer has none) as the truth.

    Any state may move to any state here (the `reconcile` rows of the table), and every
    recorded anomaly is cleared: they were all questions about ordering or ambiguity that
    the current object answers. An unknown price stays an anomaly (the catalog must learn
    the price first), and nothing else changes then.
    """
    before = record
    rec = record.model_copy(deep=True)
    _lower_future(rec, now)
    source = rec.status
    if subscription is None:
        target = source if source in ("none", *states.TERMINAL) else "canceled"
    else:
        found = _price_problems(subscription, policy)
        if found:
            return _anomaly(rec, "unknown_price", "; ".join(found), now)
        target = subscription.status
    fire(source, "reconcile", target=target)
    if subscription is not None:
        # Stripe test clocks can date events after our wall clock: never move the
        # watermark backwards, or an older event could later override what we read.
        previous = rec.watermark.created if rec.watermark else now
        _adopt(rec, subscription, max(now, previous), f"reconcile:{now}", "reconcile")
    else:
        rec.status = "canceled" if target == "canceled" else rec.status
    rec.anomalies = []
    rec.anomaly_open_since = None
    decision = _finish(
        # Evaluated from the lowered time, not from a future the record was pushed to.
        before.model_copy(update={"updated_at": rec.updated_at}),
        rec,
        now,
        policy,
        kind="applied",
        reason="reconciled with Stripe",
        transition=Transition(trigger="reconcile", source=source, dest=target),
    )
    lowered = _watermark_lowered(before, rec)
    if decision.entitlements_changed or rec.status != source or before.anomalies or lowered:
        return decision
    return Decision(kind="noop", record=rec, reason="already matches Stripe")


def _lower_future(rec: BillingRecord, now: int) -> None:
    """Bring times an implausible event pushed past the present back to `now`."""
    if rec.watermark is not None:
        created = clamp_to_present(rec.watermark.created, now)
        rec.watermark = rec.watermark.model_copy(update={"created": created})
    rec.updated_at = clamp_to_present(rec.updated_at, now)


def _watermark_lowered(before: BillingRecord, after: BillingRecord) -> bool:
    # A watermark in the future is worth a write even when nothing else changed.
    if before.watermark is None or after.watermark is None:
        return False
    return after.watermark.created < before.watermark.created


def reevaluate(record: BillingRecord, now: int, policy: Policy) -> Decision:
    """Time-based changes with no event: grace expiry, override expiry, period end."""
    rec = record.model_copy(deep=True)
    lapsed = rec.override is not None and now >= rec.override.expires_at
    decision = _finish(
        record, rec, now, policy, kind="applied", reason="re-evaluated at a later time"
    )
    if decision.entitlements_changed or lapsed:
        # A lapsed override is written even when nothing visible changes, or the record
        # stays in the due query for ever.
        return decision
    return Decision(kind="noop", record=rec, reason="nothing changed with time")


def set_override(
    record: BillingRecord, override: Override | None, now: int, policy: Policy
) -> Decision:
    """An operator grants or restricts access until `override.expires_at` (None: remove).

    The override's access level replaces the state's while it lasts; entitlements come
    from the subscription's items, or from the smallest plan for a customer with none.
    It lapses through `reevaluate` once `expires_at` passes.
    """
    rec = record.model_copy(deep=True)
    rec.override = override
    reason = "override removed" if override is None else f"override: {override.reason}"
    decision = _finish(record, rec, now, policy, kind="applied", reason=reason)
    if decision.entitlements_changed:
        return decision
    return Decision(kind="noop", record=rec, reason=f"{reason} (nothing visible changed)")


def _state(record: BillingRecord, at: int) -> dict[str, Any]:
    """The fields the entitlement-changed message and the read API share."""
    override_until = (
        record.override.expires_at if record.override_active and record.override else None
    )
    return {
        "customer_id": record.customer_id,
        "account_id": record.account_id,
        "version": record.version,
        "status": record.status,
        "access": record.access,
        "entitlements": record.entitlements or entitlements.NOTHING,
        "message": record.message or states.view(record, at, 0).message,
        "override_active": record.override_active,
        "grace_until": record.grace_until,
        "access_until": record.access_until,
        "override_until": override_until,
    }


def entitlement_message(
    record: BillingRecord,
    causing_event_id: str,
    effective_at: int,
    *,
    published_at: int,
    trace_id: str,
) -> EntitlementChanged:
    return EntitlementChanged(
        **_state(record, effective_at),
        causing_event_id=causing_event_id,
        effective_at=effective_at,
        published_at=published_at,
        trace_id=trace_id,
    )


def current_entitlements(record: BillingRecord) -> CurrentEntitlements:
    """What the read API answers: the record's state as of its last committed version."""
    return CurrentEntitlements(**_state(record, record.updated_at), updated_at=record.updated_at)
