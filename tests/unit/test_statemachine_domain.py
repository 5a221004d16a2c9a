"""decide / reconcile / reevaluate / set_override / entitlement_message on single inputs."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.scenarios import DAY, SEAT, START, TEAM, invoice_event, subscription_event
from schemas.documents import BillingRecord, Override
from schemas.entitlements import AccessLevel
from schemas.stripe import StripeEvent, Subscription
from statemachine import (
    HANDLED_EVENT_TYPES,
    Policy,
    decide,
    entitlement_message,
    is_handled_event_type,
    reconcile,
    reevaluate,
    set_override,
)
from statemachine.domain import MAX_ANOMALIES, MAX_EVENT_IDS
from statemachine.ordering import MAX_CLOCK_SKEW_SECONDS

POLICY = Policy()
UPDATED = "customer.subscription.updated"


def ev(created: int, **kw: Any) -> StripeEvent:
    return StripeEvent.model_validate(subscription_event(UPDATED, created, **kw))


def inv(event_type: str, created: int, invoice_id: str) -> StripeEvent:
    return StripeEvent.model_validate(invoice_event(event_type, created, invoice_id))


def envelope(event_type: str, obj: dict[str, object], event_id: str = "evt_x") -> StripeEvent:
    return StripeEvent.model_validate(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": START,
            "livemode": False,
            "data": {"object": obj},
        }
    )


def active() -> BillingRecord:
    return decide(BillingRecord(customer_id="cus_one"), ev(START, status="active"), POLICY).record


def test_handled_event_types() -> None:
    assert len(HANDLED_EVENT_TYPES) == 13
    assert is_handled_event_type("customer.subscription.pending_update_expired")
    assert is_handled_event_type("invoice.payment_action_required")
    assert not is_handled_event_type("charge.succeeded")
    assert not is_handled_event_type("customer.subscription.unknown_future_event")


def test_duplicate_and_ignored_return_the_record_unchanged() -> None:
    rec = active()
    again = decide(rec, ev(START, status="active"), POLICY)
    assert again.kind == "duplicate" and again.record is rec
    other = decide(rec, envelope("charge.succeeded", {"object": "charge", "id": "ch_1"}), POLICY)
    assert other.kind == "ignored" and other.record is rec


def test_decide_does_not_mutate_the_callers_record_and_bumps_version_by_one() -> None:
    rec = BillingRecord(customer_id="cus_one")
    snapshot = rec.model_dump()
    first = decide(rec, ev(START, status="trialing"), POLICY)
    assert rec.model_dump() == snapshot
    assert (first.kind, first.entitlements_changed, first.record.version) == ("applied", True, 1)
    second = decide(first.record, ev(START + 5, status="active"), POLICY)
    assert (second.entitlements_changed, second.record.version) == (True, 2)
    renewal = decide(
        second.record, ev(START + 9, status="active", period_end=START + 60 * DAY), POLICY
    )
    # A renewal changes nothing downstream sees: stored, not published.
    assert (renewal.kind, renewal.entitlements_changed, renewal.record.version) == (
        "applied",
        False,
        2,
    )
    assert renewal.record.current_period_end == START + 60 * DAY


def test_recent_event_ids_are_bounded() -> None:
    rec = active()
    for i in range(MAX_EVENT_IDS + 10):
        rec = decide(rec, inv("invoice.upcoming", START + i, f"in_{i}"), POLICY).record
    assert len(rec.recent_event_ids) == MAX_EVENT_IDS
    assert rec.recent_event_ids[-1].endswith(f"in_{MAX_EVENT_IDS + 9}_{START + MAX_EVENT_IDS + 9}")


def checkout(account: str | None, event_id: str = "evt_cs", **extra: object) -> StripeEvent:
    return envelope(
        "checkout.session.completed",
        {
            "object": "checkout.session",
            "id": "cs_1",
            "customer": "cus_one",
            "client_reference_id": account,
            **extra,
        },
        event_id,
    )


def test_checkout_links_the_account() -> None:
    fresh = BillingRecord(customer_id="cus_one")
    linked = decide(fresh, checkout("acct_9"), POLICY)
    # Nothing was published yet, so linking alone publishes nothing.
    assert (linked.kind, linked.record.account_id, linked.entitlements_changed) == (
        "applied",
        "acct_9",
        False,
    )
    assert decide(linked.record, checkout("acct_9", "evt_cs2"), POLICY).kind == "noop"
    assert decide(fresh, checkout(None), POLICY).kind == "noop"
    via_meta = decide(fresh, checkout(None, metadata={"account_id": "acct_m"}), POLICY)
    assert via_meta.record.account_id == "acct_m"
    mismatch = decide(linked.record, checkout("acct_other", "evt_cs3"), POLICY)
    assert mismatch.kind == "anomaly" and mismatch.anomaly is not None
    assert mismatch.anomaly.code == "account_mismatch"
    assert mismatch.record.account_id == "acct_9"


def test_checkout_after_publishing_republishes_with_the_account() -> None:
    rec = decide(
        BillingRecord(customer_id="cus_one"), ev(START, status="active", metadata={}), POLICY
    ).record
    assert rec.account_id is None and rec.version == 1
    linked = decide(rec, checkout("acct_9"), POLICY)
    assert (linked.entitlements_changed, linked.record.version) == (True, 2)


def test_subscription_metadata_names_the_account() -> None:
    assert active().account_id == "acct_one"


def test_unknown_price_is_an_anomaly_never_a_grant() -> None:
    rec = active()
    bad = ev(START + 5, status="active", prices={"enterprise_gold": 1}, event_id="evt_bad")
    decision = decide(rec, bad, POLICY)
    assert decision.kind == "anomaly" and decision.anomaly is not None
    assert decision.anomaly.code == "unknown_price"
    assert decision.record.entitlements == rec.entitlements
    assert decision.record.version == rec.version
    fresh = decide(BillingRecord(customer_id="cus_one"), bad, POLICY)
    assert fresh.record.access is AccessLevel.NONE and fresh.record.entitlements is None
    # A dead subscription grants nothing anyway, so its unknown prices do not block it.
    dead = ev(START + 6, status="canceled", prices={"enterprise_gold": 1}, event_id="evt_dead")
    assert decide(rec, dead, POLICY).record.status == "canceled"


def test_anomalies_are_bounded() -> None:
    rec = active()
    for i in range(MAX_ANOMALIES + 5):
        bad = ev(START + 5 + i, status="active", prices={"x": 1}, event_id=f"evt_b{i}")
        rec = decide(rec, bad, POLICY).record
    assert len(rec.anomalies) == MAX_ANOMALIES
    assert rec.anomalies[-1].event_id == f"evt_b{MAX_ANOMALIES + 4}"


def test_dunning_facts() -> None:
    rec = decide(BillingRecord(customer_id="cus_one"), ev(START, status="past_due"), POLICY).record
    assert rec.past_due_since == START and rec.grace_until == START + POLICY.grace_seconds
    rec = decide(rec, inv("invoice.payment_failed", START + 10, "in_1"), POLICY).record
    rec = decide(rec, inv("invoice.payment_failed", START + 5, "in_1"), POLICY).record
    assert (rec.failed_invoice_id, rec.payment_failed_at) == ("in_1", START + 5)
    # An earlier failure of another unpaid invoice belongs to the same streak: the clock
    # runs from the streak's first failure.
    rec = decide(rec, inv("invoice.payment_failed", START + 1, "in_0"), POLICY).record
    assert (rec.failed_invoice_id, rec.payment_failed_at) == ("in_1", START + 1)
    # Paying some other invoice does not end the streak; paying the failed one does.
    rec = decide(rec, inv("invoice.paid", START + 20, "in_other"), POLICY).record
    assert rec.failed_invoice_id == "in_1"
    paid = decide(rec, inv("invoice.paid", START + 30, "in_1"), POLICY)
    assert paid.record.failed_invoice_id is None and paid.record.payment_failed_at is None
    assert paid.record.last_paid_invoice_id == "in_1"
    assert paid.record.status == "past_due"  # status only moves on subscription snapshots


def test_payment_action_required_then_paid() -> None:
    rec = decide(
        BillingRecord(customer_id="cus_one"), ev(START, status="incomplete"), POLICY
    ).record
    action = decide(rec, inv("invoice.payment_action_required", START + 1, "in_1"), POLICY)
    assert action.record.message is not None
    assert action.record.message.code == "payment_action_required"
    assert action.entitlements_changed and action.record.version == rec.version + 1
    paid = decide(action.record, inv("invoice.paid", START + 2, "in_1"), POLICY)
    assert paid.record.payment_action_required is False


def test_async_failure_leaves_an_active_subscription_with_access() -> None:
    rec = active()
    failed = decide(rec, inv("invoice.payment_failed", START + 5, "in_up"), POLICY)
    assert failed.record.status == "active" and failed.record.access is AccessLevel.FULL
    assert failed.entitlements_changed is False


def sub(**kw: Any) -> Subscription:
    return Subscription.model_validate(subscription_event(UPDATED, START, **kw)["data"]["object"])


def test_reconcile_applies_stripe_and_clears_anomalies() -> None:
    rec = active()
    rec = decide(
        rec, ev(START + 5, status="active", sub_id="sub_two", sub_created=START + 1), POLICY
    ).record
    assert rec.anomalies
    fixed = reconcile(
        rec, sub(status="past_due", sub_id="sub_two", sub_created=START + 1), START + 100, POLICY
    )
    assert fixed.kind == "applied" and fixed.transition is not None
    assert (fixed.transition.trigger, fixed.transition.source, fixed.transition.dest) == (
        "reconcile",
        "active",
        "past_due",
    )
    assert fixed.record.anomalies == [] and fixed.record.subscription_id == "sub_two"
    assert fixed.record.watermark is not None and fixed.record.watermark.created == START + 100
    assert fixed.entitlements_changed and fixed.record.version == rec.version + 1
    again = reconcile(
        fixed.record,
        sub(status="past_due", sub_id="sub_two", sub_created=START + 1),
        START + 101,
        POLICY,
    )
    assert again.kind == "noop" and not again.entitlements_changed


def test_reconcile_without_subscription() -> None:
    gone = reconcile(active(), None, START + 100, POLICY)
    assert (gone.kind, gone.record.status, gone.record.access) == (
        "applied",
        "canceled",
        AccessLevel.NONE,
    )
    nothing = reconcile(BillingRecord(customer_id="cus_one"), None, START, POLICY)
    assert nothing.kind == "noop" and nothing.record.status == "none"


def test_reconcile_with_unknown_price_stays_an_anomaly() -> None:
    rec = active()
    decision = reconcile(rec, sub(status="active", prices={"gold": 1}), START + 100, POLICY)
    assert decision.kind == "anomaly" and decision.record.entitlements == rec.entitlements


def test_reevaluate_grace_expiry() -> None:
    rec = decide(BillingRecord(customer_id="cus_one"), ev(START, status="past_due"), POLICY).record
    assert reevaluate(rec, START + DAY, POLICY).kind == "noop"
    expired = reevaluate(rec, START + POLICY.grace_seconds, POLICY)
    assert expired.kind == "applied" and expired.entitlements_changed
    assert expired.record.access is AccessLevel.RESTRICTED
    assert expired.record.entitlements is not None
    assert expired.record.entitlements.features == ("read_only",)
    assert expired.record.version == rec.version + 1


def test_set_override_and_its_expiry() -> None:
    rec = BillingRecord(customer_id="cus_one", account_id="acct_1")
    grant = Override(
        access=AccessLevel.FULL,
        reason="pilot",
        actor="ops@dataface",
        expires_at=START + DAY,
        created_at=START,
    )
    granted = set_override(rec, grant, START, POLICY)
    assert granted.kind == "applied" and granted.record.version == 1
    assert granted.record.override_active and granted.record.access is AccessLevel.FULL
    assert granted.record.entitlements is not None
    assert granted.record.entitlements.plan == "starter"  # no items: the smallest plan
    assert set_override(granted.record, grant, START + 1, POLICY).kind == "noop"
    lapsed = reevaluate(granted.record, START + DAY, POLICY)
    assert lapsed.record.override is None and lapsed.record.access is AccessLevel.NONE
    assert lapsed.record.version == 2
    restrict = Override(
        access=AccessLevel.RESTRICTED,
        reason="abuse",
        actor="ops",
        expires_at=START + DAY,
        created_at=START,
    )
    limited = set_override(active(), restrict, START, POLICY)
    assert limited.record.entitlements is not None
    assert limited.record.entitlements.features == ("read_only",)
    cleared = set_override(limited.record, None, START + 1, POLICY)
    assert cleared.record.access is AccessLevel.FULL and cleared.entitlements_changed


def test_entitlement_message_from_the_stored_record() -> None:
    rec = decide(
        BillingRecord(customer_id="cus_one"),
        ev(START, status="active", prices={TEAM: 1, SEAT: 2}),
        POLICY,
    ).record
    msg = entitlement_message(rec, "evt_cause", START, published_at=START, trace_id="t" * 32)
    assert (msg.customer_id, msg.account_id, msg.version, msg.status) == (
        "cus_one",
        "acct_one",
        1,
        "active",
    )
    assert msg.entitlements.limits.seats == 12 and msg.message.code == "active"
    assert (msg.causing_event_id, msg.effective_at, msg.schema_version) == ("evt_cause", START, "1")
    bare = BillingRecord(customer_id="cus_two", version=3, status="unpaid")
    fallback = entitlement_message(bare, "evt_y", START, published_at=START, trace_id="t" * 32)
    assert fallback.message.code == "unpaid" and fallback.entitlements.plan is None


@pytest.mark.parametrize("status", ["canceled", "incomplete_expired", "unpaid"])
def test_no_access_in_dead_states(status: str) -> None:
    rec = decide(BillingRecord(customer_id="cus_one"), ev(START, status=status), POLICY).record
    assert rec.access is AccessLevel.NONE
    assert rec.entitlements is not None
    assert rec.entitlements.features == () and rec.entitlements.limits.tables == 0


def test_reconcile_never_moves_the_watermark_backwards_within_the_skew() -> None:
    # Stripe's clock (or a test clock) a little ahead of ours: within the allowed skew
    # the watermark stays, so an older event cannot override what reconcile read.
    ahead = START + 100 + MAX_CLOCK_SKEW_SECONDS
    rec = decide(BillingRecord(customer_id="cus_one"), ev(ahead, status="active"), POLICY).record
    fixed = reconcile(rec, sub(status="active"), START + 100, POLICY)
    assert fixed.record.watermark is not None
    assert fixed.record.watermark.created == ahead
    late = decide(fixed.record, ev(START + 300, status="past_due"), POLICY)
    assert late.kind == "stale"
