"""Table-driven: every move between two statuses, through the machine and through decide()."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from infra.local.scenarios import START, subscription_event
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent
from statemachine import TRANSITIONS, Policy, decide
from statemachine.machine import ALL_STATES, MachineError, fire, trigger_for

POLICY = Policy()
STATUSES = [s for s in ALL_STATES if s != "none"]

# The lifecycle as the issue and Stripe's docs describe it, written out independently of
# statemachine/machine.py: (from, to) -> trigger. Everything else must be refused.
LEGAL: dict[tuple[str, str], str] = {
    ("incomplete", "trialing"): "start_trial",
    ("active", "trialing"): "start_trial",
    ("incomplete", "active"): "activate",
    ("trialing", "active"): "activate",
    ("past_due", "active"): "activate",
    ("unpaid", "active"): "activate",
    ("paused", "active"): "resume",
    # Stripe's resume endpoint: "if payment fails the subscription will be past_due".
    ("paused", "past_due"): "resume_past_due",
    # The Pause endpoint and the dunning setting "pause the subscription".
    ("active", "paused"): "pause",
    ("past_due", "paused"): "pause",
    # Skips over an activating snapshot that arrives late: incomplete never fails over to
    # past_due or unpaid in Stripe, so a newer such snapshot proves it was active between.
    ("incomplete", "past_due"): "payment_failed",
    ("incomplete", "unpaid"): "mark_unpaid",
    ("trialing", "past_due"): "payment_failed",
    ("active", "past_due"): "payment_failed",
    ("trialing", "unpaid"): "mark_unpaid",
    ("active", "unpaid"): "mark_unpaid",
    ("past_due", "unpaid"): "mark_unpaid",
    ("trialing", "paused"): "pause",
    ("incomplete", "incomplete_expired"): "expire",
    **{(s, "canceled"): "cancel" for s in ("incomplete", "trialing", "active", "past_due")},
    ("unpaid", "canceled"): "cancel",
    ("paused", "canceled"): "cancel",
}
FIRST_SIGHT = {
    s: t
    for s, t in zip(
        STATUSES,
        [
            "begin",
            "expire",
            "start_trial",
            "activate",
            "payment_failed",
            "mark_unpaid",
            "cancel",
            "pause",
        ],
        strict=True,
    )
}


def test_first_sight_names_match_statuses() -> None:
    assert list(FIRST_SIGHT) == [
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "unpaid",
        "canceled",
        "paused",
    ]


def _event(status: str, created: int, **fields: Any) -> StripeEvent:
    return StripeEvent.model_validate(
        subscription_event("customer.subscription.updated", created, status=status, **fields)
    )


def _record_in(status: str) -> BillingRecord:
    decision = decide(BillingRecord(customer_id="cus_one"), _event(status, START), POLICY)
    assert decision.kind == "applied"
    assert decision.transition is not None
    assert decision.transition.trigger == FIRST_SIGHT[status]
    assert decision.record.status == status
    return decision.record


@pytest.mark.parametrize(("source", "dest"), list(itertools.product(STATUSES, STATUSES)))
def test_every_move_through_decide(source: str, dest: str) -> None:
    record = _record_in(source)
    decision = decide(record, _event(dest, START + 100, cancel_at_period_end=True), POLICY)
    if source in ("canceled", "incomplete_expired"):
        # Terminal for this subscription id: nothing for it applies again.
        assert decision.kind == ("noop" if dest == source else "stale")
        assert decision.record.status == source
        assert decision.entitlements_changed is False
        return
    if source == dest:
        assert decision.kind == "applied"
        assert decision.transition is not None
        assert decision.transition.trigger == "update"
        return
    if (source, dest) in LEGAL:
        assert decision.kind == "applied", decision.reason
        assert decision.transition is not None
        assert decision.transition.trigger == LEGAL[(source, dest)]
        assert decision.record.status == dest
    else:
        assert decision.kind == "anomaly", decision.reason
        assert decision.anomaly is not None
        assert decision.anomaly.code == "illegal_transition"
        assert decision.record.status == source
        assert decision.record.version == record.version
        assert decision.record.entitlements == record.entitlements
        assert decision.record.anomalies[-1].event_type == "customer.subscription.updated"


def test_terminal_snapshot_again_with_same_content_is_noop() -> None:
    record = _record_in("canceled")
    again = decide(record, _event("canceled", START + 100), POLICY)
    assert again.kind == "noop"
    assert again.entitlements_changed is False


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda r: f"{r.trigger}->{r.dest}")
def test_machine_table_rows_fire(row: object) -> None:
    from statemachine.machine import TransitionRow

    assert isinstance(row, TransitionRow)
    sources = ALL_STATES if row.sources == ("*",) else row.sources
    for source in sources:
        facts = {"target": row.dest, "newer_subscription": True}
        expected = source if row.dest == "=" else row.dest
        assert fire(source, row.trigger, **facts) == expected


def test_machine_refuses_unlisted_moves_and_failed_guards() -> None:
    allowed = {(s, r.trigger) for r in TRANSITIONS for s in r.sources}
    refused = 0
    for source in ALL_STATES:
        for trigger in {r.trigger for r in TRANSITIONS if r.sources != ("*",)}:
            if (source, trigger) in allowed:
                continue
            with pytest.raises(MachineError):
                fire(source, trigger)
            refused += 1
    assert refused > 40
    with pytest.raises(MachineError, match="guard refused"):
        fire("canceled", "new_subscription")
    with pytest.raises(MachineError, match="guard refused"):
        fire("active", "reconcile", target="nonexistent")


def test_no_way_back_to_incomplete_and_terminal_has_no_exit_but_a_new_subscription() -> None:
    for row in TRANSITIONS:
        if row.sources == ("*",):
            continue
        if row.dest == "incomplete":
            assert row.sources == ("none",)
        for terminal in ("canceled", "incomplete_expired"):
            if terminal in row.sources:
                assert row.trigger == "new_subscription"
                assert row.guard == "is_newer_subscription"


def test_trigger_for() -> None:
    assert trigger_for("active", "active") == "update"
    assert trigger_for("paused", "active") == "resume"
    assert trigger_for("trialing", "active") == "activate"
    assert trigger_for("canceled", "none") == "new_subscription"
