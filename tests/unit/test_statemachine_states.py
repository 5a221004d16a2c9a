"""The states table, access over time, messages, and the entitlements computation."""

from __future__ import annotations

import pytest

from infra.local.scenarios import BUSINESS, CUSTOM_RULES, DAY, SEAT, START, STARTER, TEAM
from schemas.documents import BillingRecord, ItemSnapshot, Override
from schemas.entitlements import AccessLevel
from statemachine import MESSAGES, STATES, Policy
from statemachine.catalog import CATALOG
from statemachine.entitlements import NOTHING, compute, problems
from statemachine.states import view

GRACE = Policy().grace_seconds


def test_table_covers_no_subscription_and_every_stripe_status_once() -> None:
    assert [row.status for row in STATES] == [
        "none",
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "unpaid",
        "canceled",
        "paused",
    ]
    assert {r.status for r in STATES if r.terminal} == {"canceled", "incomplete_expired"}
    for row in STATES:
        assert row.message_code in MESSAGES
        assert row.operator_view


@pytest.mark.parametrize(
    ("status", "access", "code"),
    [
        ("none", AccessLevel.NONE, "no_subscription"),
        ("incomplete", AccessLevel.NONE, "payment_incomplete"),
        ("incomplete_expired", AccessLevel.NONE, "signup_expired"),
        ("trialing", AccessLevel.FULL, "trialing"),
        ("active", AccessLevel.FULL, "active"),
        ("past_due", AccessLevel.GRACE, "payment_failed"),
        ("unpaid", AccessLevel.NONE, "unpaid"),
        ("canceled", AccessLevel.NONE, "canceled"),
        ("paused", AccessLevel.RESTRICTED, "paused"),
    ],
)
def test_access_and_message_per_state(status: str, access: AccessLevel, code: str) -> None:
    record = BillingRecord.model_validate(
        {"customer_id": "c", "status": status, "trial_end": START + DAY}
    )
    got = view(record, START, GRACE)
    assert (got.access, got.message.code) == (access, code)
    assert "{date}" not in got.message.text


def test_past_due_grace_runs_from_first_failure_then_degrades() -> None:
    record = BillingRecord(customer_id="c", status="past_due", payment_failed_at=START)
    during = view(record, START + GRACE - 1, GRACE)
    assert during.access is AccessLevel.GRACE
    assert during.grace_until == START + GRACE
    assert during.message.text == (
        "Your last payment failed. Update your card by 2026-01-08 to keep monitoring running."
    )
    after = view(record, START + GRACE, GRACE)
    assert (after.access, after.message.code, after.grace_until) == (
        AccessLevel.RESTRICTED,
        "payment_overdue",
        None,
    )
    # Without the failure event yet, the clock starts when past_due was first seen.
    seen = BillingRecord(customer_id="c", status="past_due", past_due_since=START + 5)
    assert view(seen, START, GRACE).grace_until == START + 5 + GRACE
    unknown = BillingRecord(customer_id="c", status="past_due")
    assert view(unknown, START, GRACE).grace_until == START + GRACE


def test_grace_period_is_configurable() -> None:
    record = BillingRecord(customer_id="c", status="past_due", payment_failed_at=START)
    short = Policy(grace_period_days=1).grace_seconds
    assert view(record, START + DAY, short).access is AccessLevel.RESTRICTED
    assert view(record, START + DAY, GRACE).access is AccessLevel.GRACE


def test_cancel_at_period_end_keeps_access_until_the_end() -> None:
    record = BillingRecord(
        customer_id="c",
        status="active",
        cancel_at_period_end=True,
        current_period_end=START + 30 * DAY,
    )
    before = view(record, START, GRACE)
    assert (before.access, before.message.code, before.access_until) == (
        AccessLevel.FULL,
        "cancel_scheduled",
        START + 30 * DAY,
    )
    assert "2026-01-31" in before.message.text
    ended = view(record, START + 30 * DAY, GRACE)
    assert (ended.access, ended.message.code) == (AccessLevel.NONE, "subscription_ended")
    # A past_due customer who also cancels keeps the payment message until the end.
    dunning = record.model_copy(update={"status": "past_due", "payment_failed_at": START})
    assert view(dunning, START, GRACE).message.code == "payment_failed"


def test_payment_action_required_message() -> None:
    record = BillingRecord(customer_id="c", status="incomplete", payment_action_required=True)
    assert view(record, START, GRACE).message.code == "payment_action_required"


def test_override_sets_access_until_it_expires() -> None:
    override = Override(
        access=AccessLevel.FULL,
        reason="goodwill",
        actor="ops@x",
        expires_at=START + DAY,
        created_at=START,
    )
    record = BillingRecord(customer_id="c", status="unpaid", override=override)
    got = view(record, START, GRACE)
    assert (got.access, got.override_active, got.access_until) == (
        AccessLevel.FULL,
        True,
        START + DAY,
    )
    assert got.message.code == "support_override"
    assert view(record, START + DAY, GRACE).access is AccessLevel.NONE


def items(**prices: int) -> list[ItemSnapshot]:
    return [
        ItemSnapshot(item_id=f"si_{k}", price_id=f"price_{k}", lookup_key=k, quantity=q)
        for k, q in prices.items()
    ]


def test_entitlements_from_plan_add_ons_and_seats() -> None:
    got = compute(AccessLevel.FULL, items(**{TEAM: 1, CUSTOM_RULES: 3, SEAT: 4}), CATALOG)
    assert got.plan == "team"
    assert got.add_ons == ("custom_rules", "extra_seat")
    assert "slack_alerts" in got.features and "custom_rules" in got.features
    # Non-per-unit add-ons count once whatever the quantity; seats per unit.
    assert got.limits.custom_rules == 50
    assert got.limits.seats == 10 + 4
    assert got.limits.tables == 25
    business = compute(AccessLevel.GRACE, items(**{BUSINESS: 1}), CATALOG)
    assert {"pagerduty_alerts", "api_access", "team_governance"} <= set(business.features)
    assert business.limits.api_requests_per_day == 10_000


def test_restricted_is_read_only_with_limits_kept_and_none_is_nothing() -> None:
    got = compute(AccessLevel.RESTRICTED, items(**{STARTER: 1}), CATALOG)
    assert got.features == ("read_only",)
    assert got.limits.tables == 5
    assert compute(AccessLevel.NONE, items(**{BUSINESS: 1}), CATALOG) == NOTHING
    assert NOTHING.limits.tables == 0 and NOTHING.features == ()


def test_unknown_price_grants_nothing_and_is_reported() -> None:
    unknown = [ItemSnapshot(item_id="si", price_id="price_x", lookup_key="enterprise_gold")]
    assert compute(AccessLevel.FULL, unknown, CATALOG) == NOTHING
    assert compute(AccessLevel.FULL, [*unknown, *items(**{SEAT: 3})], CATALOG) == NOTHING
    found = problems(unknown, CATALOG)
    assert any("unknown price price_x" in p for p in found)
    assert problems(items(**{STARTER: 1, TEAM: 1}), CATALOG) == [
        "expected exactly one plan item, found 2"
    ]
    assert problems(items(**{STARTER: 1, SEAT: 2}), CATALOG) == []
    no_key = [ItemSnapshot(item_id="si", price_id="price_y")]
    assert problems(no_key, CATALOG)[0].startswith("unknown price price_y")
