"""The Stripe billing simulator (tests/support/simulator/): deterministic, shaped like
Stripe's objects, emitting Stripe's events in Stripe's order, readable by our readers and
servable to the real gateway through tests/support/stripe_server.py."""

from __future__ import annotations

import collections
import json
import random
from typing import Any

import pytest
import stripe

from functions.adapters.stripe_gateway import STRIPE_API_VERSION, SdkStripeGateway
from schemas.stripe import (
    CheckoutSession,
    Invoice,
    StripeEvent,
    Subscription,
    UpcomingInvoice,
)
from statemachine.catalog import CATALOG
from tests.support.simulator import (
    CURRENT_API_VERSION,
    DAY,
    HOUR,
    KINDS,
    START,
    Run,
    Settings,
    Shape,
    Simulator,
    SimulatorError,
    play,
    random_stories,
    random_story,
)
from tests.support.stripe_server import StripeServer

Json = dict[str, Any]
SHAPES: tuple[Shape, ...] = ("current", "2020-08-27", "pre_prices")
TEAM = "dataface_team_monthly"
FEB_1 = START + 31 * DAY  # the first renewal of a subscription started at START


def types(sim: Simulator, since: int = 0) -> list[str]:
    return [e["type"] for e in sim.events[since:]]


def signed_up(sim: Simulator, plan: str = "team", **kwargs: Any) -> tuple[str, str]:
    cus = sim.create_customer("acct_1")
    return cus, sim.subscribe(cus, plan, **kwargs)


def sub_of(sim: Simulator, cus: str, index: int = -1) -> Json:
    return sim.subscriptions_of(cus)[index]


# -- determinism and envelopes ----------------------------------------------------------


def test_same_seed_and_story_give_the_same_events_other_seeds_other_ids() -> None:
    def run(seed: int) -> list[Json]:
        sim = Simulator(seed=seed)
        play(sim, random_stories(random.Random(4), 20))
        return sim.events

    first, again, other = run(1), run(1), run(2)
    assert json.dumps(first) == json.dumps(again)
    assert [e["id"] for e in first] != [e["id"] for e in other]
    assert [e["type"] for e in first] == [e["type"] for e in other]


def test_story_generator_is_seeded() -> None:
    assert random_story(random.Random(9), 3) == random_story(random.Random(9), 3)
    assert random_stories(random.Random(1), 30) != random_stories(random.Random(2), 30)


def test_api_version_is_the_gateways_pin() -> None:
    assert CURRENT_API_VERSION == STRIPE_API_VERSION


def test_envelopes_look_like_stripes_and_share_seconds() -> None:
    sim = Simulator(seed=3)
    play(sim, random_stories(random.Random(3), 30))
    ids = [e["id"] for e in sim.events]
    assert len(set(ids)) == len(ids)
    created = [e["created"] for e in sim.events]
    assert created == sorted(created)
    assert max(collections.Counter(created).values()) >= 5  # one action, one second
    for event in sim.events:
        assert event["object"] == "event" and event["livemode"] is False
        assert event["pending_webhooks"] == 1 and event["api_version"] == CURRENT_API_VERSION
        assert set(event["request"]) == {"id", "idempotency_key"}
        if event["type"].endswith(".updated"):
            assert event["data"]["previous_attributes"]
        else:
            assert "previous_attributes" not in event["data"]


def test_api_actions_carry_a_request_id_and_automatic_events_none() -> None:
    sim = Simulator()
    _cus, sub = signed_up(sim)
    sim.advance(5 * DAY)
    mark = len(sim.events)
    sim.cancel_at_period_end(sub)
    (update,) = sim.events[mark:]
    assert update["request"]["id"].startswith("req_") and update["request"]["idempotency_key"]
    sim.advance_to(FEB_1 + 1)
    assert sim.events[-1]["type"] == "customer.subscription.deleted"
    assert sim.events[-1]["request"] == {"id": None, "idempotency_key": None}


# -- each action's events ---------------------------------------------------------------


def test_checkout_with_a_card_pays_and_activates() -> None:
    sim = Simulator()
    cus = sim.create_customer("acct_1")
    mark = len(sim.events)
    sim.subscribe(cus, "team", add_ons=("lineage",), seats=2)
    assert types(sim, mark) == [
        "customer.updated",  # the card Checkout collected
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    created, updated = sim.events[mark + 1], sim.events[mark + 6]
    assert created["data"]["object"]["status"] == "incomplete"
    assert updated["data"]["object"]["status"] == "active"
    assert updated["data"]["previous_attributes"] == {"status": "incomplete"}
    paid = sim.events[mark + 4]["data"]["object"]
    assert (
        paid["billing_reason"] == "subscription_create"
        and paid["amount_paid"] == 19900 + 9900 + 2 * 4900
    )
    session = sim.events[-1]["data"]["object"]
    assert session["client_reference_id"] == "acct_1" and session["mode"] == "subscription"
    assert (
        session["payment_status"] == "paid"
        and session["subscription"] == created["data"]["object"]["id"]
    )
    assert {e["created"] for e in sim.events[mark:]} == {START}


def test_renewal_success_creates_then_charges_an_hour_later() -> None:
    sim = Simulator()
    _cus, _sub = signed_up(sim)
    sim.advance_to(FEB_1 - 1)
    mark = len(sim.events)
    sim.advance(2 * HOUR)
    assert types(sim, mark) == [
        "invoice.created",
        "customer.subscription.updated",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    created, updated, finalized = sim.events[mark : mark + 3]
    assert created["created"] == updated["created"] == FEB_1
    assert finalized["created"] == FEB_1 + HOUR
    assert created["data"]["object"]["status"] == "draft"
    assert created["data"]["object"]["billing_reason"] == "subscription_cycle"
    assert created["data"]["object"]["automatically_finalizes_at"] == FEB_1 + HOUR
    item = updated["data"]["object"]["items"]["data"][0]
    assert (item["current_period_start"], item["current_period_end"]) == (FEB_1, START + 59 * DAY)
    assert set(updated["data"]["previous_attributes"]) == {"items", "latest_invoice"}


def test_invoice_upcoming_has_no_id_and_comes_days_before_renewal() -> None:
    sim = Simulator(settings=Settings(upcoming_days=7))
    _cus, sub = signed_up(sim)
    sim.advance_to(FEB_1 - 1)
    (upcoming,) = [e for e in sim.events if e["type"] == "invoice.upcoming"]
    assert upcoming["created"] == FEB_1 - 7 * DAY
    obj = upcoming["data"]["object"]
    assert "id" not in obj and obj["billing_reason"] == "upcoming"
    parsed = UpcomingInvoice.model_validate(obj)
    assert parsed.id is None and parsed.subscription_id == sub
    assert obj["next_payment_attempt"] == FEB_1 + HOUR


def test_no_invoice_upcoming_when_the_subscription_ends_at_period_end() -> None:
    sim = Simulator()
    _cus, sub = signed_up(sim)
    sim.cancel_at_period_end(sub)
    sim.advance(40 * DAY)
    assert "invoice.upcoming" not in types(sim)
    assert "invoice.created" not in types(sim)[9:]


def test_renewal_failure_retries_on_schedule_then_cancels() -> None:
    sim = Simulator(settings=Settings(retry_days=(3, 5, 7), after_retries="cancel"))
    cus, _sub = signed_up(sim)
    sim.advance(10 * DAY)
    sim.set_card(cus, ok=False)
    mark = len(sim.events)
    sim.advance_to(FEB_1 + 10 * DAY)
    failed = [e for e in sim.events[mark:] if e["type"] == "invoice.payment_failed"]
    first = FEB_1 + HOUR
    assert [e["created"] for e in failed] == [
        first,
        first + 3 * DAY,
        first + 5 * DAY,
        first + 7 * DAY,
    ]
    invoices = [e["data"]["object"] for e in failed]
    assert [i["attempt_count"] for i in invoices] == [1, 2, 3, 4]
    assert [i["next_payment_attempt"] for i in invoices] == [
        first + 3 * DAY,
        first + 5 * DAY,
        first + 7 * DAY,
        None,
    ]
    statuses = [
        (e["type"], e["data"]["object"]["status"])
        for e in sim.events[mark:]
        if e["type"].startswith("customer.subscription.")
    ]
    assert statuses == [
        ("customer.subscription.updated", "active"),  # the new period
        ("customer.subscription.updated", "past_due"),
        ("customer.subscription.deleted", "canceled"),
    ]
    deleted = sim.events[-1]["data"]["object"]
    assert deleted["cancellation_details"]["reason"] == "payment_failed"
    assert deleted["ended_at"] == first + 7 * DAY
    assert sim.invoices_of(cus)[-1]["status"] == "open"


def test_after_retries_unpaid_stops_charging_new_invoices() -> None:
    sim = Simulator(settings=Settings(after_retries="unpaid"))
    cus, _sub = signed_up(sim)
    sim.set_card(cus, ok=False)
    sim.advance_to(FEB_1 + 8 * DAY)
    assert sub_of(sim, cus)["status"] == "unpaid"
    sim.advance_to(START + 59 * DAY + 2 * HOUR)  # the next renewal
    latest = sim.invoices_of(cus)[-1]
    assert latest["status"] == "open" and latest["attempted"] is False
    assert latest["auto_advance"] is False
    sim.set_card(cus, ok=True)
    assert len(sim.pay_open_invoices(cus)) == 2
    assert sub_of(sim, cus)["status"] == "active"


def test_after_retries_past_due_keeps_invoicing_and_charging() -> None:
    sim = Simulator(settings=Settings(after_retries="past_due", retry_days=(1,)))
    cus, _sub = signed_up(sim)
    sim.set_card(cus, ok=False)
    sim.advance_to(FEB_1 + 3 * DAY)
    assert sub_of(sim, cus)["status"] == "past_due"
    assert "customer.subscription.deleted" not in types(sim)
    sim.advance_to(START + 59 * DAY + 2 * HOUR)
    assert sim.invoices_of(cus)[-1]["attempt_count"] == 1
    assert sub_of(sim, cus)["status"] == "past_due"


def test_a_new_card_is_used_by_the_next_retry() -> None:
    sim = Simulator()
    cus, _sub = signed_up(sim)
    sim.set_card(cus, ok=False)
    sim.advance_to(FEB_1 + 2 * DAY)
    sim.set_card(cus, ok=True)
    sim.advance_to(FEB_1 + 4 * DAY)
    paid = [e for e in sim.events if e["type"] == "invoice.paid"][-1]
    assert paid["created"] == FEB_1 + HOUR + 3 * DAY
    assert paid["data"]["object"]["attempt_count"] == 2
    assert sub_of(sim, cus)["status"] == "active"


def test_paying_open_invoices_by_hand_does_not_count_as_a_retry() -> None:
    sim = Simulator()
    cus, _sub = signed_up(sim)
    sim.set_card(cus, ok=False)
    sim.advance_to(FEB_1 + 2 * DAY)
    sim.set_card(cus, ok=True)
    mark = len(sim.events)
    (_paid_id,) = sim.pay_open_invoices(cus)
    assert types(sim, mark) == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.updated",  # delinquent false
        "customer.subscription.updated",
    ]
    assert sim.events[mark]["data"]["object"]["attempt_count"] == 1
    assert sub_of(sim, cus)["status"] == "active"
    sim.advance(10 * DAY)
    assert "invoice.payment_failed" not in types(sim, mark)


def test_signup_without_a_valid_card_expires_after_23_hours() -> None:
    sim = Simulator()
    cus, _sub = signed_up(sim, card=False)
    assert sub_of(sim, cus)["status"] == "incomplete"
    first = sim.invoices_of(cus)[0]
    assert (first["status"], first["attempt_count"], first["next_payment_attempt"]) == (
        "open",
        1,
        None,
    )
    assert "checkout.session.completed" not in types(sim)
    mark = len(sim.events)
    sim.advance(2 * DAY)
    assert types(sim, mark) == [
        "invoice.voided",
        "customer.subscription.updated",
        "checkout.session.expired",
    ]
    assert sim.events[mark]["created"] == START + 23 * HOUR
    expired = sim.events[mark + 1]["data"]["object"]
    assert expired["status"] == "incomplete_expired" and expired["ended_at"] == START + 23 * HOUR
    assert sim.events[mark + 2]["created"] == START + 24 * HOUR


def test_signup_paid_within_23_hours_becomes_active() -> None:
    sim = Simulator()
    cus, _sub = signed_up(sim, card=False)
    sim.advance(5 * HOUR)
    sim.set_card(cus, ok=True)
    sim.pay_open_invoices(cus)
    sim.advance(DAY)
    assert sub_of(sim, cus)["status"] == "active"


# -- trials ----------------------------------------------------------------------------


def test_trial_with_a_card_converts_to_active_and_pays() -> None:
    sim = Simulator(settings=Settings(upcoming_days=None))
    cus, _sub = signed_up(sim, "starter", trial_days=30)
    assert types(sim)[2:] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]
    assert sim.invoices_of(cus)[0]["total"] == 0
    assert sim.events[-1]["data"]["object"]["payment_status"] == "no_payment_required"
    mark = len(sim.events)
    sim.advance(30 * DAY + 2 * HOUR)
    assert types(sim, mark) == [
        "customer.subscription.trial_will_end",
        "invoice.created",
        "customer.subscription.updated",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert sim.events[mark]["created"] == START + 27 * DAY
    converted = sim.events[mark + 2]
    assert converted["created"] == START + 30 * DAY
    assert converted["data"]["object"]["status"] == "active"
    assert converted["data"]["previous_attributes"]["status"] == "trialing"


@pytest.mark.parametrize(
    ("behavior", "expected_types", "status"),
    [
        ("pause", ["customer.subscription.updated", "customer.subscription.paused"], "paused"),
        ("cancel", ["customer.subscription.deleted"], "canceled"),
    ],
)
def test_trial_without_a_card_ends_per_missing_payment_method(
    behavior: Any, expected_types: list[str], status: str
) -> None:
    sim = Simulator(settings=Settings(upcoming_days=None))
    cus, _sub = signed_up(sim, trial_days=14, card=False, missing_payment_method=behavior)
    assert sim.sessions_of(cus)[0]["payment_method_collection"] == "if_required"
    sim.advance(14 * DAY - 1)
    mark = len(sim.events)
    sim.advance(10 * DAY)
    assert types(sim, mark) == expected_types
    final = sub_of(sim, cus)
    assert final["status"] == status
    assert final["trial_settings"]["end_behavior"]["missing_payment_method"] == behavior
    if behavior == "pause":
        paused = final["status_details"]["paused"]
        assert paused["subscription"]["type"] == "trial_end_without_payment_method"
        assert paused["transitioned_at"] == START + 14 * DAY
    assert len(sim.invoices_of(cus)) == 1


def test_trial_without_a_card_and_create_invoice_goes_past_due_without_retries() -> None:
    sim = Simulator()
    cus, _sub = signed_up(sim, trial_days=14, card=False, missing_payment_method="create_invoice")
    sim.advance(20 * DAY)
    assert sub_of(sim, cus)["status"] == "past_due"
    failed = sim.invoices_of(cus)[-1]
    assert failed["attempt_count"] == 1 and failed["next_payment_attempt"] is None


def test_paused_trial_resumes_when_a_card_arrives() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim, trial_days=14, card=False)
    sim.advance(20 * DAY)
    sim.set_card(cus, ok=True)
    mark = len(sim.events)
    sim.resume(sub)
    assert types(sim, mark) == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.resumed",
        "customer.subscription.updated",
    ]
    resumed = sub_of(sim, cus)
    assert resumed["status"] == "active" and resumed["status_details"] is None
    assert resumed["billing_cycle_anchor"] == START + 20 * DAY


# -- pause, plan changes, cancellation ---------------------------------------------------


def test_pause_stops_invoicing_and_resume_starts_a_new_period() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim)
    sim.advance(10 * DAY)
    mark = len(sim.events)
    sim.pause(sub)
    assert types(sim, mark) == ["customer.subscription.updated", "customer.subscription.paused"]
    paused = sub_of(sim, cus)["status_details"]["paused"]
    assert paused["subscription"]["type"] == "pause_requested"
    sim.advance(50 * DAY)
    assert types(sim, mark + 2) == []  # no renewal while paused
    sim.resume(sub)
    assert sub_of(sim, cus)["status"] == "active"
    assert sim.invoices_of(cus)[-1]["status"] == "paid"


def test_resume_with_an_invoice_still_open_is_past_due() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim)
    sim.set_card(cus, ok=False)
    sim.advance_to(FEB_1 + DAY)
    sim.pause(sub)
    sim.resume(sub)
    assert sim.events[-2]["type"] == "customer.subscription.resumed"
    assert sub_of(sim, cus)["status"] == "past_due"
    with pytest.raises(SimulatorError):
        sim.resume(sub)


def test_pause_is_refused_with_a_schedule() -> None:
    sim = Simulator()
    _cus, sub = signed_up(sim, "business")
    sim.downgrade_at_period_end(sub, "starter")
    with pytest.raises(SimulatorError, match="schedule"):
        sim.pause(sub)


def test_pause_collection_keeps_the_status_and_voids_renewals() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim)
    sim.pause_collection(sub, "void", resumes_at=START + 50 * DAY)
    sim.advance_to(FEB_1 + 2 * HOUR)
    assert sub_of(sim, cus)["status"] == "active"
    assert sub_of(sim, cus)["pause_collection"] == {
        "behavior": "void",
        "resumes_at": START + 50 * DAY,
    }
    assert sim.invoices_of(cus)[-1]["status"] == "void"
    assert "invoice.upcoming" not in types(sim)
    sim.advance_to(START + 60 * DAY)
    assert sub_of(sim, cus)["pause_collection"] is None
    assert sim.invoices_of(cus)[-1]["status"] == "paid"


def test_upgrade_now_invoices_the_proration() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim, "starter")
    sim.advance(10 * DAY)
    item_id = sub_of(sim, cus)["items"]["data"][0]["id"]
    mark = len(sim.events)
    sim.upgrade(sub, "business")
    assert types(sim, mark) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    item = sub_of(sim, cus)["items"]["data"][0]
    assert item["id"] == item_id and item["price"]["lookup_key"] == "dataface_business_monthly"
    invoice = sim.invoices_of(cus)[-1]
    assert invoice["billing_reason"] == "subscription_update"
    credit, charge = (line["amount"] for line in invoice["lines"]["data"])
    left = 21 / 31
    assert credit == -round(14900 * left) and charge == round(29900 * left)
    assert all(
        line["parent"]["subscription_item_details"]["proration"]
        for line in invoice["lines"]["data"]
    )


def test_create_prorations_waits_for_the_next_invoice() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim, "starter")
    sim.advance(10 * DAY)
    sim.change_items(sub, seats=3, proration_behavior="create_prorations")
    assert sim.events[-1]["type"] == "customer.subscription.updated"
    sim.advance_to(FEB_1 + 2 * HOUR)
    lines = sim.invoices_of(cus)[-1]["lines"]["data"]
    assert len(lines) == 3
    assert lines[0]["parent"]["subscription_item_details"]["proration"] is True


def test_downgrade_at_period_end_flips_items_through_the_schedule() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim, "business")
    sim.advance(10 * DAY)
    mark = len(sim.events)
    sched_id = sim.downgrade_at_period_end(sub, "starter")
    assert types(sim, mark) == [
        "subscription_schedule.created",
        "customer.subscription.updated",
        "subscription_schedule.updated",
    ]
    assert sub_of(sim, cus)["schedule"] == sched_id
    assert (
        sub_of(sim, cus)["items"]["data"][0]["price"]["lookup_key"] == "dataface_business_monthly"
    )
    sim.advance_to(FEB_1 + 2 * HOUR)
    flip = [
        e
        for e in sim.events
        if e["created"] == FEB_1 and e["type"] == "customer.subscription.updated"
    ]
    (updated,) = flip
    assert (
        updated["data"]["object"]["items"]["data"][0]["price"]["lookup_key"]
        == "dataface_starter_monthly"
    )
    assert "items" in updated["data"]["previous_attributes"]
    assert sim.invoices_of(cus)[-1]["total"] == 14900
    sim.advance_to(START + 59 * DAY + 1)
    assert sim.schedules_of(cus)[0]["status"] == "released"
    assert sub_of(sim, cus)["schedule"] is None


def test_seats_and_add_ons_change_items() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim, "team")
    sim.advance(3 * DAY)
    sim.change_items(sub, add_ons=("lineage", "custom_rules"), seats=4)
    assert sim.composition(sub) == ("team", ("lineage", "custom_rules"), 4)
    sim.change_items(sub, add_ons=("lineage",), seats=0)
    assert sim.composition(sub) == ("team", ("lineage",), 0)
    keys = [i["price"]["lookup_key"] for i in sub_of(sim, cus)["items"]["data"]]
    assert keys == ["dataface_team_monthly", "dataface_addon_lineage_monthly"]


def test_cancel_at_a_date_and_cancel_now() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim)
    sim.cancel_at(sub, START + 12 * DAY)
    sim.advance(13 * DAY)
    ended = sub_of(sim, cus)
    assert ended["status"] == "canceled" and ended["ended_at"] == START + 12 * DAY
    assert ended["canceled_at"] == START
    second = sim.subscribe(cus, "starter")
    sim.advance(DAY)
    mark = len(sim.events)
    sim.cancel_now(second)
    assert types(sim, mark) == ["customer.subscription.deleted"]
    gone = sub_of(sim, cus)
    assert gone["ended_at"] == gone["canceled_at"] == START + 14 * DAY
    assert gone["cancellation_details"]["reason"] == "cancellation_requested"
    with pytest.raises(SimulatorError):
        sim.cancel_now(second)


def test_a_second_subscription_for_the_same_customer() -> None:
    sim = Simulator()
    cus, first = signed_up(sim, "team")
    sim.advance(DAY)
    second = sim.subscribe(cus, "starter")
    assert [s["id"] for s in sim.subscriptions_of(cus)] == [first, second]
    assert {s["status"] for s in sim.subscriptions_of(cus)} == {"active"}


def test_transfer_price_leaves_old_subscriptions_on_the_old_price() -> None:
    sim = Simulator()
    cus, _old_sub = signed_up(sim, "team")
    old_price = sim.price_id(TEAM)
    sim.advance(DAY)
    mark = len(sim.events)
    new_price = sim.transfer_price(TEAM, 24900)
    assert types(sim, mark) == ["price.created", "price.updated", "price.updated"]
    assert sim.price_id(TEAM) == new_price
    newer = sim.create_customer("acct_2")
    sim.subscribe(newer, "team")
    sim.advance_to(FEB_1 + 2 * HOUR)
    old_item = sub_of(sim, cus)["items"]["data"][0]["price"]
    assert old_item["id"] == old_price and old_item["lookup_key"] is None
    assert old_item["active"] is False
    assert old_item["metadata"] == {"dataface_id": "team", "dataface_kind": "plan"}
    recognised = CATALOG.recognise(old_item["lookup_key"], old_item["metadata"]["dataface_id"])
    assert recognised is not None and recognised.id == "team"
    assert sim.invoices_of(cus)[-1]["total"] == 19900  # the renewal still bills the old price
    new_item = sub_of(sim, newer)["items"]["data"][0]["price"]
    assert (new_item["id"], new_item["lookup_key"], new_item["unit_amount"]) == (
        new_price,
        TEAM,
        24900,
    )


# -- shapes ----------------------------------------------------------------------------


def _sdk_classes() -> dict[str, type]:
    return {
        "subscription": stripe.Subscription,
        "subscription_item": stripe.SubscriptionItem,
        "invoice": stripe.Invoice,
        "line_item": stripe.InvoiceLineItem,
        "price": stripe.Price,
        "plan": stripe.Plan,
        "product": stripe.Product,
        "customer": stripe.Customer,
        "checkout.session": stripe.checkout.Session,
        "subscription_schedule": stripe.SubscriptionSchedule,
        "event": stripe.Event,
    }


# Fields Stripe removed in 2025-03-31.basil, present in the older shapes.
LEGACY_FIELDS = {
    "subscription": {"current_period_start", "current_period_end"},
    "invoice": {"subscription"},
    "line_item": {"plan", "price", "proration", "subscription_item", "type"},
    "plan": {"aggregate_usage"},
    "price.recurring": {"aggregate_usage"},
}


def _objects(node: Any) -> list[Json]:
    found: list[Json] = []
    if isinstance(node, dict):
        if isinstance(node.get("object"), str) and node["object"] != "list":
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def _unknown(obj: Json, cls: type, path: str, extra: dict[str, set[str]]) -> set[str]:
    """Keys of `obj` (and of its nested hashes) that the SDK's class does not declare."""
    known = set(cls.__annotations__) | extra.get(path, set())
    found = {f"{path}.{k}" for k in obj if k not in known}
    inner: dict[str, type] = getattr(cls, "_inner_class_types", {})
    for key, inner_cls in inner.items():
        value = obj.get(key)
        for nested in value if isinstance(value, list) else [value]:
            if isinstance(nested, dict) and "object" not in nested:
                found |= _unknown(nested, inner_cls, f"{path}.{key}", extra)
    return found


def _story_sim(shape: Shape, after: Any = "cancel") -> Simulator:
    sim = Simulator(seed=5, shape=shape, settings=Settings(after_retries=after))
    play(sim, random_stories(random.Random(5), len(KINDS) * 2))
    return sim


@pytest.mark.parametrize("shape", SHAPES)
def test_no_field_outside_stripes_sdk_types(shape: Shape) -> None:
    sim = _story_sim(shape)
    classes = _sdk_classes()
    extra = LEGACY_FIELDS if shape != "current" else {}
    invented: set[str] = set()
    for event in sim.events:
        for obj in _objects(event):
            invented |= _unknown(obj, classes[obj["object"]], obj["object"], extra)
    assert invented == set()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("after", ["cancel", "unpaid", "past_due"])
def test_every_event_validates_with_our_readers(shape: Shape, after: Any) -> None:
    sim = _story_sim(shape, after)
    seen = collections.Counter[str]()
    for raw in sim.events:
        event = StripeEvent.model_validate(raw)
        obj = event.data.object
        seen[event.type] += 1
        if event.type.startswith("customer.subscription."):
            sub = Subscription.model_validate(obj)
            assert sub.period_end is not None and event.customer_id == sub.customer
            for item in sub.items.data:
                assert CATALOG.recognise(
                    item.price.lookup_key, item.price.metadata.get("dataface_id")
                )
        elif event.type == "invoice.upcoming":
            upcoming = UpcomingInvoice.model_validate(obj)
            assert upcoming.id is None and upcoming.subscription_id
        elif event.type.startswith("invoice."):
            assert Invoice.model_validate(obj).subscription_id
        elif event.type.startswith("checkout.session."):
            assert CheckoutSession.model_validate(obj).client_reference_id
    assert {"invoice.upcoming", "customer.subscription.paused", "invoice.payment_failed"} <= set(
        seen
    )


def test_current_shape_periods_on_items_and_invoice_parent() -> None:
    sim = Simulator()
    cus, sub = signed_up(sim)
    obj = sub_of(sim, cus)
    assert "current_period_end" not in obj
    item = obj["items"]["data"][0]
    assert item["current_period_end"] == FEB_1 and item["price"]["id"] == item["plan"]["id"]
    invoice = sim.invoices_of(cus)[0]
    assert "subscription" not in invoice
    assert invoice["parent"]["subscription_details"]["subscription"] == sub
    assert invoice["lines"]["data"][0]["pricing"]["price_details"]["price"] == item["price"]["id"]


def test_2020_08_27_shape_periods_on_the_subscription_and_invoice_subscription() -> None:
    sim = Simulator(shape="2020-08-27")
    cus, sub = signed_up(sim)
    assert sim.events[-1]["api_version"] == "2020-08-27"
    obj = sub_of(sim, cus)
    assert (obj["current_period_start"], obj["current_period_end"]) == (START, FEB_1)
    item = obj["items"]["data"][0]
    assert "current_period_end" not in item
    assert item["plan"]["id"] == item["price"]["id"] and item["plan"]["amount"] == 19900
    invoice = sim.invoices_of(cus)[0]
    assert invoice["subscription"] == sub and "parent" not in invoice
    line = invoice["lines"]["data"][0]
    assert line["price"]["id"] == item["price"]["id"] and line["proration"] is False
    assert Subscription.model_validate(obj).period_end == FEB_1


def test_pre_prices_shape_items_carry_a_plan_only() -> None:
    sim = Simulator(shape="pre_prices")
    cus, _sub = signed_up(sim, "business")
    item = sub_of(sim, cus)["items"]["data"][0]
    assert "price" not in item
    plan = item["plan"]
    assert plan["object"] == "plan" and plan["interval"] == "month"
    assert (plan["amount"], plan["metadata"]["dataface_id"]) == (29900, "business")
    parsed = Subscription.model_validate(sub_of(sim, cus))
    assert parsed.items.data[0].price.id == plan["id"]
    assert "price" not in sim.invoices_of(cus)[0]["lines"]["data"][0]
    sim.transfer_price("dataface_business_monthly", 30900)
    assert sim.events[-1]["type"] == "plan.updated"


# -- stories ---------------------------------------------------------------------------

FINAL: dict[str, set[tuple[str, ...]]] = {
    "trial_converts": {("active",)},
    "trial_no_card": {("paused",), ("canceled",), ("active",)},
    "pay_and_renew": {("active",)},
    "failure_recovery": {("active",)},
    "pause_resume": {("active",)},
    "upgrade": {("active",)},
    "downgrade": {("active",)},
    "seats_addons": {("active",)},
    "cancel_period_end": {("canceled",)},
    "cancel_now": {("canceled",)},
    "resubscribe": {("canceled", "active")},
    "second_subscription": {("active", "active")},
    "abandoned_signup": {("incomplete_expired",)},
    "price_transfer": {("active",)},
}
EXHAUSTED = {"cancel": "canceled", "unpaid": "unpaid", "past_due": "past_due"}


@pytest.mark.parametrize("after", ["cancel", "unpaid", "past_due"])
def test_every_story_kind_ends_where_stripe_would_leave_it(after: Any) -> None:
    sim = Simulator(seed=8, settings=Settings(after_retries=after))
    runs = play(sim, random_stories(random.Random(8), len(KINDS) * 3))
    assert {r.story.kind for r in runs} == set(KINDS)
    for run in runs:
        assert run.skipped == []
        final = tuple(sim.world.subscriptions[s].status for s in run.subscription_ids)
        expected = FINAL.get(run.story.kind, {(EXHAUSTED[after],)})
        assert final in expected, (run.story, final)


def test_story_kinds_do_what_they_say() -> None:
    sim = Simulator(seed=2)
    runs = play(sim, random_stories(random.Random(2), len(KINDS)))
    by_kind: dict[str, Run] = {r.story.kind: r for r in runs}

    def of(kind: str) -> list[Json]:
        return [
            e
            for e in sim.events
            if e["data"]["object"].get("customer") == by_kind[kind].customer_id
        ]

    assert any(e["type"] == "invoice.payment_failed" for e in of("failure_recovery"))
    assert any(e["type"] == "subscription_schedule.created" for e in of("downgrade"))
    assert any(
        e["type"] == "invoice.created"
        and e["data"]["object"]["billing_reason"] == "subscription_update"
        for e in of("upgrade")
    )
    run = by_kind["price_transfer"]
    plan_item = sim.world.subscriptions[run.subscription_ids[0]].items[0]
    assert sim.world.prices[plan_item.price].lookup_key is None


# -- served to the real gateway --------------------------------------------------------


def test_served_state_reads_back_through_the_real_gateway() -> None:
    sim = Simulator(seed=6)
    runs = play(sim, random_stories(random.Random(6), len(KINDS)))
    lost = [e["id"] for e in sim.events[-5:]]
    server = StripeServer().start()
    try:
        sim.load_into(server, undelivered=lost)
        gateway = SdkStripeGateway(
            "sk_test_local", api_base=server.url, max_requests_per_second=1000
        )
        for run in runs:
            listed = gateway.list_customer_subscriptions(run.customer_id)
            assert sorted(s["id"] for s in listed) == sorted(run.subscription_ids)
            for raw in listed:
                parsed = Subscription.model_validate(raw)
                assert parsed.status == sim.world.subscriptions[parsed.id].status
        prices = gateway.list_prices(lookup_keys=[TEAM])
        assert [p["id"] for p in prices] == [sim.price_id(TEAM)]
        assert len(gateway.list_products()) == len(CATALOG.plans) + len(CATALOG.add_ons)
        caught = gateway.list_undelivered_events(created_gte=START)
        assert sorted(e["id"] for e in caught) == sorted(lost)
        assert all(StripeEvent.model_validate(e).id in lost for e in caught)
    finally:
        server.stop()


def test_serve_writes_a_state_without_a_server() -> None:
    from tests.support.stripe_server import State

    sim = Simulator()
    cus, sub = signed_up(sim)
    state = sim.serve(State())
    assert state.subscriptions[sub]["customer"] == cus
    assert state.customers[cus]["metadata"] == {"account_id": "acct_1"}
    assert len(state.events) == len(sim.events) and state.undelivered == set()
    with pytest.raises(KeyError):
        sim.serve(State(), undelivered=["evt_unknown"])
