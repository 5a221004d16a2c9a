"""The out-of-order rule (statemachine/ordering.py), one case per clause."""

from __future__ import annotations

from typing import Any

from infra.local.scenarios import BUSINESS, DAY, START, TEAM, invoice_event, subscription_event
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent
from statemachine import Policy, decide

POLICY = Policy()
UPDATED = "customer.subscription.updated"
CREATED = "customer.subscription.created"


def ev(event_type: str, created: int, **kw: Any) -> StripeEvent:
    return StripeEvent.model_validate(subscription_event(event_type, created, **kw))


def inv(event_type: str, created: int, invoice_id: str, **kw: Any) -> StripeEvent:
    return StripeEvent.model_validate(invoice_event(event_type, created, invoice_id, **kw))


def run(*events: StripeEvent, record: BillingRecord | None = None) -> list[str]:
    rec = record or BillingRecord(customer_id="cus_one")
    kinds: list[str] = []
    for event in events:
        decision = decide(rec, event, POLICY)
        rec = decision.record
        kinds.append(decision.kind)
    run.last = rec  # type: ignore[attr-defined]
    return kinds


def last() -> BillingRecord:
    return run.last  # type: ignore[attr-defined,no-any-return]


def test_late_created_never_rolls_active_back_to_incomplete() -> None:
    kinds = run(ev(UPDATED, START + 5, status="active"), ev(CREATED, START, status="incomplete"))
    assert kinds == ["applied", "stale"]
    assert last().status == "active"


def test_late_created_in_the_same_second_is_stale_too() -> None:
    kinds = run(ev(UPDATED, START, status="active"), ev(CREATED, START, status="incomplete"))
    assert kinds == ["applied", "stale"]
    assert last().status == "active"


def test_same_second_after_created_applies_the_newer_event() -> None:
    kinds = run(ev(CREATED, START, status="incomplete"), ev(UPDATED, START, status="active"))
    assert kinds == ["applied", "applied"]
    assert last().status == "active"


def test_older_snapshot_is_stale_newer_applies() -> None:
    kinds = run(
        ev(UPDATED, START + 10, status="active"),
        ev(UPDATED, START + 5, status="past_due"),
        ev(UPDATED, START + 20, status="past_due"),
    )
    assert kinds == ["applied", "stale", "applied"]
    assert last().status == "past_due"


def test_terminal_wins_regardless_of_order_and_nothing_reopens_it() -> None:
    kinds = run(
        ev("customer.subscription.deleted", START + 5, status="canceled"),
        ev(UPDATED, START + 50, status="active"),
        ev(CREATED, START, status="active"),
    )
    assert kinds == ["applied", "stale", "stale"]
    assert last().status == "canceled"
    kinds = run(ev(UPDATED, START + 50, status="active"), ev(UPDATED, START + 5, status="canceled"))
    assert kinds == ["applied", "applied"]
    assert last().status == "canceled"


def test_identical_twin_event_is_noop_and_emits_nothing() -> None:
    first = ev(UPDATED, START, status="paused")
    twin = ev("customer.subscription.paused", START, status="paused")
    rec = BillingRecord(customer_id="cus_one")
    a = decide(rec, first, POLICY)
    b = decide(a.record, twin, POLICY)
    assert (a.kind, a.entitlements_changed) == ("applied", True)
    assert (b.kind, b.entitlements_changed) == ("noop", False)
    assert b.record.version == a.record.version


def test_newer_identical_snapshot_advances_the_watermark() -> None:
    # active(t1), past_due(t2), active(t3) delivered as t1, t3, t2: t2 must not win.
    kinds = run(
        ev(UPDATED, START + 1, status="active"),
        ev(UPDATED, START + 3, status="active"),
        ev(UPDATED, START + 2, status="past_due"),
    )
    assert kinds == ["applied", "noop", "stale"]
    assert last().status == "active"
    watermark = last().watermark
    assert watermark is not None
    assert watermark.created == START + 3


def test_same_second_evidence_period_end_and_incomplete() -> None:
    base = ev(UPDATED, START, status="active", period_end=START + 30 * DAY)
    # All three in the same second: only the period ends can order them.
    later = ev(UPDATED, START, status="past_due", period_end=START + 60 * DAY)
    earlier = ev(UPDATED, START, status="unpaid", period_end=START + 30 * DAY, prices={TEAM: 1})
    assert run(base, later, earlier) == ["applied", "applied", "stale"]
    assert last().status == "past_due"
    back = ev(UPDATED, START + 9, status="incomplete")
    assert run(base, ev(UPDATED, START + 9, status="trialing"), back) == [
        "applied",
        "applied",
        "stale",
    ]
    leave = ev(UPDATED, START + 9, status="active", event_id="evt_leave")
    assert run(
        ev(UPDATED, START + 1, status="incomplete"),
        ev(UPDATED, START + 9, status="incomplete", prices={TEAM: 1}),
        leave,
    ) == ["applied", "applied", "applied"]


def test_same_second_without_evidence_is_an_anomaly_not_a_guess() -> None:
    a = ev(UPDATED, START + 9, status="active", prices={TEAM: 1}, event_id="evt_a")
    b = ev(UPDATED, START + 9, status="active", prices={BUSINESS: 1}, event_id="evt_b")
    kinds = run(ev(UPDATED, START, status="active"), a, b)
    assert kinds == ["applied", "applied", "anomaly"]
    rec = last()
    assert rec.anomalies[-1].code == "ambiguous_order"
    assert rec.entitlements is not None
    assert rec.entitlements.plan == "team"  # unchanged by the anomaly


def test_other_subscription_ids() -> None:
    old = ev(UPDATED, START + 100, sub_id="sub_old", status="active", sub_created=START)
    new = ev(UPDATED, START + 50, sub_id="sub_new", status="active", sub_created=START + 10)
    # A newer live subscription while the current one is live: anomaly.
    assert run(old, new) == ["applied", "anomaly"]
    assert last().anomalies[-1].code == "two_live_subscriptions"
    # An older subscription than the current one: stale.
    assert run(new, old) == ["applied", "stale"]
    # Created in the same second: anomaly.
    twin = ev(UPDATED, START + 60, sub_id="sub_twin", status="active", sub_created=START + 10)
    assert run(new, twin) == ["applied", "anomaly"]
    assert last().anomalies[-1].code == "ambiguous_subscription"
    # A newer one that already ended does not displace the live one.
    dead = ev(
        UPDATED, START + 70, sub_id="sub_dead", status="incomplete_expired", sub_created=START + 20
    )
    assert run(new, dead) == ["applied", "stale"]
    assert last().subscription_id == "sub_new"


def test_new_subscription_after_terminal_starts_over_and_resets_dunning() -> None:
    rec = BillingRecord(customer_id="cus_one")
    for event in (
        ev(UPDATED, START, sub_id="sub_old", status="past_due"),
        inv("invoice.payment_failed", START, "in_old", sub_id="sub_old"),
        ev("customer.subscription.deleted", START + 5, sub_id="sub_old", status="canceled"),
    ):
        rec = decide(rec, event, POLICY).record
    assert rec.failed_invoice_id == "in_old"
    decision = decide(
        rec,
        ev(CREATED, START + 9, sub_id="sub_new", status="trialing", sub_created=START + 9),
        POLICY,
    )
    assert decision.kind == "applied"
    assert decision.transition is not None
    assert decision.transition.trigger == "new_subscription+start_trial"
    assert decision.record.subscription_id == "sub_new"
    assert decision.record.failed_invoice_id is None
    assert decision.record.payment_failed_at is None


def test_invoice_rules() -> None:
    sub = ev(UPDATED, START, status="past_due")
    paid = inv("invoice.paid", START + 20, "in_1")
    failed = inv("invoice.payment_failed", START + 10, "in_1")
    # Paid first: the late failure of the same invoice is stale; a second paid is noop.
    assert run(sub, paid, failed, inv("invoice.paid", START + 21, "in_1", event_id="evt_x")) == [
        "applied",
        "applied",
        "stale",
        "noop",
    ]
    assert last().payment_failed_at is None
    other = inv("invoice.payment_failed", START + 10, "in_9", sub_id="sub_other")
    upcoming = inv("invoice.upcoming", START + 10, "in_u")
    assert run(sub, other, upcoming) == ["applied", "stale", "noop"]


def test_invoice_for_no_subscription_yet_is_kept() -> None:
    kinds = run(inv("invoice.payment_failed", START, "in_1"), ev(UPDATED, START, status="past_due"))
    assert kinds == ["applied", "applied"]
    assert last().payment_failed_at == START
    assert last().grace_until == START + POLICY.grace_seconds
