"""Hypothesis over arbitrary (not realistic) event streams: the domain never raises, and
its invariants hold after every decision whatever Stripe sends, in whatever order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from infra.local.scenarios import (
    BUSINESS,
    DAY,
    SEAT,
    START,
    STARTER,
    TEAM,
    invoice_event,
    subscription_event,
)
from schemas.documents import BillingRecord
from schemas.entitlements import AccessLevel
from schemas.stripe import StripeEvent
from statemachine import Policy, decide, entitlement_message, reevaluate
from statemachine.catalog import CATALOG
from statemachine.domain import INVOICE_EVENTS, SUBSCRIPTION_EVENTS
from statemachine.machine import ALL_STATES

POLICY = Policy()
SUB_CREATED = {"sub_a": START, "sub_b": START + 10}
PRICES = [{STARTER: 1}, {TEAM: 1, SEAT: 3}, {BUSINESS: 1}, {"unknown_gold": 1}, {SEAT: 2}]
STATUSES = [s for s in ALL_STATES if s != "none"]
UNCHANGED_KINDS = ("duplicate", "ignored", "stale", "noop", "anomaly")


@st.composite
def raw_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    created = START + draw(st.integers(0, 40))
    event_id = f"evt_f{draw(st.integers(0, index))}"  # sometimes an earlier id again
    kind = draw(st.sampled_from(["sub", "sub", "sub", "invoice", "checkout", "other"]))
    if kind == "sub":
        sub_id = draw(st.sampled_from(sorted(SUB_CREATED)))
        return subscription_event(
            draw(st.sampled_from(sorted(SUBSCRIPTION_EVENTS))),
            created,
            event_id=event_id,
            sub_id=sub_id,
            sub_created=SUB_CREATED[sub_id],
            status=draw(st.sampled_from(STATUSES)),
            prices=draw(st.sampled_from(PRICES)),
            period_end=START + draw(st.sampled_from([30, 60])) * DAY,
            cancel_at_period_end=draw(st.booleans()),
        )
    if kind == "invoice":
        return invoice_event(
            draw(st.sampled_from(sorted(INVOICE_EVENTS))),
            created,
            draw(st.sampled_from(["in_1", "in_2"])),
            event_id=event_id,
            sub_id=draw(st.sampled_from(sorted(SUB_CREATED))),
        )
    obj: dict[str, Any] = {"object": "checkout.session", "id": "cs_1", "customer": "cus_one"}
    if kind == "checkout":
        obj["client_reference_id"] = draw(st.sampled_from(["acct_1", "acct_2", None]))
    return {
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed" if kind == "checkout" else "charge.refunded",
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }


@st.composite
def streams(draw: st.DrawFn) -> list[StripeEvent]:
    size = draw(st.integers(1, 14))
    return [StripeEvent.model_validate(draw(raw_event(i))) for i in range(size)]


def check_record(rec: BillingRecord) -> None:
    ents = rec.entitlements
    if rec.status in ("canceled", "incomplete_expired", "unpaid", "none", "incomplete"):
        assert rec.access is AccessLevel.NONE
    if rec.access is AccessLevel.NONE:
        assert ents is None or (ents.features == () and ents.limits.tables == 0)
    elif ents is not None and ents.plan is not None:
        # Anything granted comes from catalog prices only.
        keys = {i.lookup_key for i in rec.items}
        assert all(CATALOG.by_lookup_key(k) is not None for k in keys if k is not None)
        assert None not in keys


@settings(max_examples=300, deadline=None)
@given(events=streams(), later=st.integers(0, 90 * DAY))
def test_invariants_hold_for_any_stream(events: list[StripeEvent], later: int) -> None:
    rec = BillingRecord(customer_id="cus_one")
    for event in events:
        decision = decide(rec, event, POLICY)
        new = decision.record
        assert new.version == rec.version + int(decision.entitlements_changed)
        if decision.kind in UNCHANGED_KINDS:
            assert (new.status, new.access, new.entitlements, new.subscription_id) == (
                rec.status,
                rec.access,
                rec.entitlements,
                rec.subscription_id,
            )
        if decision.kind == "anomaly":
            assert decision.anomaly is not None and new.anomalies[-1] == decision.anomaly
        if decision.entitlements_changed:
            message = entitlement_message(
                new, event.id, event.created, published_at=event.created, trace_id="t" * 32
            )
            assert (message.version, message.access) == (new.version, new.access)
        check_record(new)
        rec = new
    aged = reevaluate(rec, START + later, POLICY).record
    check_record(aged)
    failed_at = aged.payment_failed_at
    if (
        aged.status == "past_due"
        and failed_at
        and START + later >= failed_at + POLICY.grace_seconds
    ):
        assert aged.access in (AccessLevel.RESTRICTED, AccessLevel.NONE)
