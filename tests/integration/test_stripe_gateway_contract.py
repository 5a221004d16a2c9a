"""One behavioural suite, two Stripe gateways: the in-memory fake and SdkStripeGateway
talking Stripe's wire format to the local server (tests/support/stripe_server.py).

Service tests trust FakeStripeGateway; this suite is what keeps it honest. It covers what
the services rely on: customers, catalog objects and prices found by lookup key,
subscriptions and their schedules, checkout and portal sessions, undelivered events,
idempotency keys, and which refusals and failures come back as which error. Retries,
pacing and pagination belong to the SDK adapter alone (test_stripe_gateway.py).

Neither variant needs the emulators: both run under `-m "not emulator"`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.errors import PermanentError, StripeRejected, StripeUnavailable, TransientError
from functions.ports import StripeGateway
from schemas.stripe import Subscription
from tests.support.fake_stripe_gateway import FakeStripeGateway
from tests.support.stripe_server import StripeServer

Obj = dict[str, Any]
SUCCESS = "https://app.example.test/billing/success"
CANCEL = "https://app.example.test/billing/cancel"


@dataclass
class Adapter:
    gateway: StripeGateway
    # What the port cannot create, seeded the way Stripe would hold it.
    seed_subscription: Callable[..., Obj]
    seed_event: Callable[[Obj, bool], None]
    # fail_next(count, status): Stripe answers the next `count` requests with `status`.
    fail_next: Callable[[int, int], None]
    # How many requests reached Stripe so far.
    requests: Callable[[], int]


def fake_adapter() -> Adapter:
    fake = FakeStripeGateway()
    return Adapter(
        gateway=fake,
        seed_subscription=fake.seed_subscription,
        seed_event=lambda event, delivered: fake.seed_event(event, delivered=delivered),
        fail_next=fake.fail_next,
        requests=lambda: len(fake.calls),
    )


def sdk_adapter(server: StripeServer) -> Adapter:
    gateway = SdkStripeGateway(
        "sk_test_local",
        api_base=server.url,
        # Pacing and the SDK's retries are test_stripe_gateway.py's subject; here every
        # answer, a failure included, reaches the caller at once.
        max_requests_per_second=1_000,
        max_network_retries=0,
    )
    return Adapter(
        gateway=gateway,
        seed_subscription=server.seed_subscription,
        seed_event=lambda event, delivered: server.seed_event(event, delivered=delivered),
        fail_next=lambda count, status: server.fail_next(count, status=status),
        requests=lambda: len(server.requests),
    )


@pytest.fixture(params=["fake", "sdk"])
def stripe(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    if request.param == "fake":
        yield fake_adapter()
        return
    server = StripeServer().start()
    try:
        yield sdk_adapter(server)
    finally:
        server.stop()


# -- helpers ------------------------------------------------------------------------------


def product(gw: StripeGateway, name: str = "Team", **metadata: str) -> Obj:
    return gw.create_product(
        {"name": name, "metadata": {"dataface_id": name.lower(), **metadata}},
        idempotency_key=f"product-{name}",
    )


def price(
    gw: StripeGateway,
    product_id: str,
    key: str,
    lookup_key: str | None = None,
    *,
    amount: int = 2_900,
    transfer: bool = False,
) -> Obj:
    params: Obj = {
        "product": product_id,
        "currency": "usd",
        "unit_amount": amount,
        "recurring": {"interval": "month", "interval_count": 1},
        "nickname": key,
        "metadata": {"dataface_id": key},
    }
    if lookup_key is not None:
        params["lookup_key"] = lookup_key
    if transfer:
        params["transfer_lookup_key"] = True
    return gw.create_price(params, idempotency_key=f"price-{key}")


@dataclass
class Catalog:
    product: Obj
    starter: Obj
    team: Obj
    seat: Obj


def catalog(gw: StripeGateway) -> Catalog:
    prod = product(gw)
    return Catalog(
        product=prod,
        starter=price(gw, prod["id"], "starter", "dataface_starter_monthly", amount=900),
        team=price(gw, prod["id"], "team", "dataface_team_monthly", amount=2_900),
        seat=price(gw, prod["id"], "seat", "dataface_seat_monthly", amount=500),
    )


def customer(gw: StripeGateway, account_id: str = "acct_1") -> Obj:
    return gw.create_customer(
        {"metadata": {"account_id": account_id}}, idempotency_key=f"customer-for-{account_id}"
    )


def items_of(sub: Obj) -> list[tuple[str, int]]:
    return sorted((i["price"]["id"], i["quantity"]) for i in sub["items"]["data"])


def listed(gw: StripeGateway, customer_id: str, sub_id: str) -> Obj:
    return next(s for s in gw.list_customer_subscriptions(customer_id) if s["id"] == sub_id)


def rejected(call: Callable[[], object], status: int, code: str | None = None) -> StripeRejected:
    with pytest.raises(StripeRejected) as info:
        call()
    assert info.value.http_status == status
    if code is not None:
        assert info.value.code == code
    return info.value


# -- idempotency --------------------------------------------------------------------------


def test_every_create_needs_an_idempotency_key_and_nothing_is_sent_without_one(
    stripe: Adapter,
) -> None:
    gw = stripe.gateway
    creates: list[Callable[[], object]] = [
        lambda: gw.create_customer({}, idempotency_key=""),
        lambda: gw.create_product({"name": "P"}, idempotency_key=""),
        lambda: gw.create_price({"product": "prod_x"}, idempotency_key=""),
        lambda: gw.create_checkout_session({"mode": "subscription"}, idempotency_key=""),
        lambda: gw.create_portal_session({"customer": "cus_x"}, idempotency_key=""),
        lambda: gw.update_subscription("sub_x", {}, idempotency_key=""),
        lambda: gw.create_subscription_schedule({}, idempotency_key=""),
        lambda: gw.update_subscription_schedule("sub_sched_x", {}, idempotency_key=""),
        lambda: gw.release_subscription_schedule("sub_sched_x", idempotency_key=""),
    ]
    for create in creates:
        with pytest.raises(ValueError, match="idempotency key"):
            create()
    assert stripe.requests() == 0


def test_the_same_key_replays_the_same_object_and_another_key_makes_another(
    stripe: Adapter,
) -> None:
    gw = stripe.gateway
    first = gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1")
    again = gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1")
    other = gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k2")

    assert first["id"].startswith("cus_") and first["object"] == "customer"
    assert first["metadata"] == {"account_id": "a"}
    assert again == first
    assert other["id"] != first["id"]

    prod = product(gw)
    assert product(gw) == prod
    assert [p["id"] for p in gw.list_products()] == [prod["id"]]


def test_a_key_reused_for_another_request_is_refused(stripe: Adapter) -> None:
    gw = stripe.gateway
    first = gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1")

    error = rejected(
        lambda: gw.create_customer({"metadata": {"account_id": "b"}}, idempotency_key="k1"), 400
    )
    assert isinstance(error, PermanentError)
    rejected(lambda: gw.create_product({"name": "P"}, idempotency_key="k1"), 400)
    # The first request under the key still replays.
    assert gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1") == first


def test_a_retried_update_under_the_same_key_applies_once(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    sub = stripe.seed_subscription(cus["id"], [(cat.team["id"], 1)])
    add_seats = {"items": [{"price": cat.seat["id"], "quantity": 3}]}

    first = gw.update_subscription(sub["id"], add_seats, idempotency_key="seats-1")
    retry = gw.update_subscription(sub["id"], add_seats, idempotency_key="seats-1")

    assert retry == first
    assert items_of(first) == sorted([(cat.team["id"], 1), (cat.seat["id"], 3)])
    assert items_of(listed(gw, cus["id"], sub["id"])) == items_of(first)


def test_a_stripe_outage_is_transient_and_not_remembered_under_the_key(stripe: Adapter) -> None:
    gw = stripe.gateway
    stripe.fail_next(1, 503)

    with pytest.raises(StripeUnavailable) as info:
        gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1")
    assert isinstance(info.value, TransientError)

    # The caller's retry under the same key goes through: exactly one customer exists.
    created = gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1")
    assert gw.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k1") == created
    stripe.fail_next(1, 500)
    with pytest.raises(StripeUnavailable):
        gw.list_products()


# -- refusals -----------------------------------------------------------------------------

UNKNOWN_IDS: dict[str, Callable[[StripeGateway], object]] = {
    "update_product": lambda gw: gw.update_product("prod_missing", {"name": "x"}),
    "update_price": lambda gw: gw.update_price("price_missing", {"active": False}),
    "create_price": lambda gw: gw.create_price(
        {"product": "prod_missing", "currency": "usd", "unit_amount": 100},
        idempotency_key="p",
    ),
    "create_checkout_session": lambda gw: gw.create_checkout_session(
        {
            "mode": "subscription",
            "customer": "cus_missing",
            "line_items": [{"price": "price_missing", "quantity": 1}],
            "success_url": SUCCESS,
        },
        idempotency_key="c",
    ),
    "create_portal_session": lambda gw: gw.create_portal_session(
        {"customer": "cus_missing", "return_url": SUCCESS}, idempotency_key="b"
    ),
    "update_subscription": lambda gw: gw.update_subscription(
        "sub_missing", {"cancel_at_period_end": True}, idempotency_key="u"
    ),
    "create_subscription_schedule": lambda gw: gw.create_subscription_schedule(
        {"from_subscription": "sub_missing"}, idempotency_key="s"
    ),
    "update_subscription_schedule": lambda gw: gw.update_subscription_schedule(
        "sub_sched_missing", {"end_behavior": "release"}, idempotency_key="us"
    ),
    "release_subscription_schedule": lambda gw: gw.release_subscription_schedule(
        "sub_sched_missing", idempotency_key="r"
    ),
    "retrieve_subscription": lambda gw: gw.retrieve_subscription("sub_missing"),
    "retrieve_invoice": lambda gw: gw.retrieve_invoice("in_missing"),
    "retrieve_checkout_session": lambda gw: gw.retrieve_checkout_session("cs_missing"),
    "retrieve_thin_event": lambda gw: gw.retrieve_thin_event("evt_missing"),
}


@pytest.mark.parametrize("call", UNKNOWN_IDS.values(), ids=UNKNOWN_IDS.keys())
def test_an_unknown_id_is_a_permanent_not_found(
    stripe: Adapter, call: Callable[[StripeGateway], object]
) -> None:
    error = rejected(lambda: call(stripe.gateway), 404, "resource_missing")
    assert isinstance(error, PermanentError)
    assert "missing" in str(error)  # names what was not found


def test_a_missing_required_parameter_is_refused(stripe: Adapter) -> None:
    gw = stripe.gateway
    missing = "parameter_missing"
    rejected(lambda: gw.create_product({}, idempotency_key="a"), 400, missing)
    rejected(lambda: gw.create_portal_session({}, idempotency_key="b"), 400, missing)
    rejected(lambda: gw.create_subscription_schedule({}, idempotency_key="c"), 400, missing)
    rejected(
        lambda: gw.create_checkout_session({"mode": "subscription"}, idempotency_key="d"),
        400,
        missing,
    )


# -- catalog ------------------------------------------------------------------------------


def test_products_are_listed_and_updates_merge_metadata(stripe: Adapter) -> None:
    gw = stripe.gateway
    team = product(gw, "Team", dataface_kind="plan")
    seat = product(gw, "Seat")

    updated = gw.update_product(
        team["id"], {"name": "Team plan", "active": False, "metadata": {"dataface_rank": "2"}}
    )

    assert (updated["name"], updated["active"]) == ("Team plan", False)
    assert updated["metadata"] == {
        "dataface_id": "team",
        "dataface_kind": "plan",
        "dataface_rank": "2",
    }
    # Archived products are still listed (catalog sync reactivates them), newest first.
    listed_products = gw.list_products()
    assert [p["id"] for p in listed_products] == [seat["id"], team["id"]]
    assert listed_products[1] == updated


def test_prices_are_found_by_lookup_key(stripe: Adapter) -> None:
    gw = stripe.gateway
    prod = product(gw)
    keyed = price(gw, prod["id"], "team", "dataface_team_monthly")
    unkeyed = price(gw, prod["id"], "old")
    other = price(gw, product(gw, "Seat")["id"], "seat", "dataface_seat_monthly")

    found = gw.list_prices(lookup_keys=["dataface_team_monthly", "dataface_nothing"])

    assert found == [keyed]
    assert (keyed["lookup_key"], keyed["unit_amount"], keyed["currency"]) == (
        "dataface_team_monthly",
        2_900,
        "usd",
    )
    assert keyed["product"] == prod["id"] and keyed["active"] is True
    assert keyed["recurring"]["interval"] == "month"
    assert keyed["recurring"]["interval_count"] == 1
    assert keyed["metadata"] == {"dataface_id": "team"}
    assert gw.list_prices(lookup_keys=[]) == []
    assert [p["id"] for p in gw.list_prices(product=prod["id"])] == [unkeyed["id"], keyed["id"]]
    both = gw.list_prices(lookup_keys=["dataface_team_monthly", "dataface_seat_monthly"])
    assert [p["id"] for p in both] == [other["id"], keyed["id"]]


def test_a_lookup_key_belongs_to_one_price_and_moves_only_on_transfer(stripe: Adapter) -> None:
    gw = stripe.gateway
    prod = product(gw)
    old = price(gw, prod["id"], "v1", "dataface_team_monthly")

    rejected(lambda: price(gw, prod["id"], "v2", "dataface_team_monthly"), 400, "lookup_key_in_use")
    new = price(gw, prod["id"], "v3", "dataface_team_monthly", amount=3_900, transfer=True)

    assert gw.list_prices(lookup_keys=["dataface_team_monthly"]) == [new]
    by_id = {p["id"]: p for p in gw.list_prices(product=prod["id"])}
    assert set(by_id) == {old["id"], new["id"]}
    assert by_id[old["id"]]["lookup_key"] is None


def test_a_price_can_be_archived_and_relabelled_but_not_repriced(stripe: Adapter) -> None:
    gw = stripe.gateway
    team = price(gw, product(gw)["id"], "team", "dataface_team_monthly")

    archived = gw.update_price(team["id"], {"active": False, "metadata": {"superseded": "yes"}})

    assert archived["active"] is False
    assert archived["metadata"] == {"dataface_id": "team", "superseded": "yes"}
    # Still found by its key: checkout filters on `active` itself.
    assert gw.list_prices(lookup_keys=["dataface_team_monthly"]) == [archived]
    rejected(lambda: gw.update_price(team["id"], {"unit_amount": 100}), 400)
    assert gw.list_prices(lookup_keys=["dataface_team_monthly"]) == [archived]


# -- subscriptions ------------------------------------------------------------------------


def test_a_customers_subscriptions_are_all_listed_newest_first(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus, other = customer(gw, "acct_1"), customer(gw, "acct_2")
    old = stripe.seed_subscription(
        cus["id"], [(cat.starter["id"], 1)], status="canceled", period_start=1_700_000_000
    )
    new = stripe.seed_subscription(
        cus["id"],
        [(cat.team["id"], 1), (cat.seat["id"], 4)],
        status="active",
        period_start=1_700_100_000,
    )
    stripe.seed_subscription(other["id"], [(cat.team["id"], 1)])

    subs = gw.list_customer_subscriptions(cus["id"])

    assert [s["id"] for s in subs] == [new["id"], old["id"]]
    parsed = [Subscription.model_validate(s) for s in subs]  # as reconcile reads them
    assert [(s.status, s.customer) for s in parsed] == [
        ("active", cus["id"]),
        ("canceled", cus["id"]),
    ]
    assert sorted((i.price.lookup_key, i.quantity) for i in parsed[0].items.data) == [
        ("dataface_seat_monthly", 4),
        ("dataface_team_monthly", 1),
    ]
    assert parsed[0].period_end == 1_700_100_000 + 30 * 86_400
    assert gw.list_customer_subscriptions(customer(gw, "acct_3")["id"]) == []


def test_a_thin_events_read_returns_the_objects_current_state(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    sub = stripe.seed_subscription(cus["id"], [(cat.team["id"], 1)])
    gw.update_subscription(sub["id"], {"cancel_at_period_end": True}, idempotency_key="c1")

    read = gw.retrieve_subscription(sub["id"])

    assert read == listed(gw, cus["id"], sub["id"])
    assert read["cancel_at_period_end"] is True and items_of(read) == [(cat.team["id"], 1)]
    session = gw.create_checkout_session(
        checkout_params(cus, cat.team, cat.seat), idempotency_key="checkout-read"
    )
    assert gw.retrieve_checkout_session(session["id"]) == session


def test_an_upgrade_reprices_deletes_and_adds_items(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    sub = stripe.seed_subscription(cus["id"], [(cat.starter["id"], 1), (cat.seat["id"], 2)])
    plan_item, seat_item = sorted(
        sub["items"]["data"], key=lambda i: i["price"]["id"] != cat.starter["id"]
    )

    updated = gw.update_subscription(
        sub["id"],
        {
            "items": [
                {"id": plan_item["id"], "price": cat.team["id"], "quantity": 1},
                {"id": seat_item["id"], "deleted": True},
                {"price": cat.seat["id"], "quantity": 5},
            ],
            "proration_behavior": "create_prorations",
        },
        idempotency_key="upgrade-1",
    )

    assert items_of(updated) == sorted([(cat.team["id"], 1), (cat.seat["id"], 5)])
    kept = next(i for i in updated["items"]["data"] if i["price"]["id"] == cat.team["id"])
    assert kept["id"] == plan_item["id"]  # repriced in place, not replaced
    assert kept["price"]["lookup_key"] == "dataface_team_monthly"
    assert listed(gw, cus["id"], sub["id"])["items"] == updated["items"]

    ended = gw.update_subscription(
        sub["id"], {"cancel_at_period_end": True}, idempotency_key="cancel-1"
    )
    assert ended["cancel_at_period_end"] is True
    assert listed(gw, cus["id"], sub["id"])["cancel_at_period_end"] is True


def test_a_downgrade_schedule_holds_the_subscription_until_released(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    sub = stripe.seed_subscription(
        cus["id"], [(cat.team["id"], 1)], period_start=1_700_000_000, period_end=1_702_592_000
    )

    schedule = gw.create_subscription_schedule(
        {"from_subscription": sub["id"]}, idempotency_key="schedule-1"
    )

    assert (schedule["subscription"], schedule["customer"]) == (sub["id"], cus["id"])
    assert (schedule["status"], schedule["end_behavior"]) == ("active", "release")
    assert schedule["phases"] == [
        {
            "start_date": 1_700_000_000,
            "end_date": 1_702_592_000,
            "items": [{"price": cat.team["id"], "quantity": 1}],
        }
    ]
    assert listed(gw, cus["id"], sub["id"])["schedule"] == schedule["id"]
    # One schedule per subscription, and while it holds the subscription, items are its.
    rejected(
        lambda: gw.create_subscription_schedule(
            {"from_subscription": sub["id"]}, idempotency_key="schedule-2"
        ),
        400,
    )
    more = {"items": [{"price": cat.seat["id"], "quantity": 1}]}
    rejected(lambda: gw.update_subscription(sub["id"], more, idempotency_key="u1"), 400)

    phases = [
        {
            "items": [{"price": cat.team["id"], "quantity": 1}],
            "start_date": 1_700_000_000,
            "end_date": 1_702_592_000,
        },
        {
            "items": [{"price": cat.starter["id"], "quantity": 1}],
            "proration_behavior": "none",
            "duration": {"interval": "month", "interval_count": 1},
        },
    ]
    planned = gw.update_subscription_schedule(
        schedule["id"], {"end_behavior": "release", "phases": phases}, idempotency_key="down-1"
    )
    assert planned["id"] == schedule["id"] and planned["phases"] == phases

    bad = [{"items": [{"price": "price_missing", "quantity": 1}], "start_date": 1}]
    rejected(
        lambda: gw.update_subscription_schedule(
            schedule["id"], {"phases": bad}, idempotency_key="down-2"
        ),
        404,
        "resource_missing",
    )

    released = gw.release_subscription_schedule(schedule["id"], idempotency_key="release-1")
    assert (released["status"], released["released_subscription"]) == ("released", sub["id"])
    assert listed(gw, cus["id"], sub["id"])["schedule"] is None
    assert items_of(gw.update_subscription(sub["id"], more, idempotency_key="u2")) == sorted(
        [(cat.team["id"], 1), (cat.seat["id"], 1)]
    )


# -- sessions -----------------------------------------------------------------------------


def checkout_params(cus: Obj, *line_prices: Obj) -> Obj:
    return {
        "mode": "subscription",
        "customer": cus["id"],
        "client_reference_id": "acct_1",
        "line_items": [{"price": p["id"], "quantity": 1} for p in line_prices],
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "metadata": {"account_id": "acct_1"},
        "subscription_data": {
            "metadata": {"account_id": "acct_1", "dataface_plan": "team"},
            "trial_period_days": 30,
        },
    }


def test_a_checkout_session_is_an_open_hosted_page_for_the_customer(stripe: Adapter) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    params = checkout_params(cus, cat.team, cat.seat)

    session = gw.create_checkout_session(params, idempotency_key="checkout-1")

    assert session["object"] == "checkout.session" and session["id"]
    assert session["url"].startswith("https://") and session["status"] == "open"
    assert (session["customer"], session["client_reference_id"], session["mode"]) == (
        cus["id"],
        "acct_1",
        "subscription",
    )
    assert session["metadata"] == {"account_id": "acct_1"}
    assert gw.create_checkout_session(params, idempotency_key="checkout-1") == session
    fresh = gw.create_checkout_session(params, idempotency_key="checkout-2")
    assert fresh["id"] != session["id"]


def test_a_checkout_for_an_archived_price_is_refused_and_the_refusal_replays(
    stripe: Adapter,
) -> None:
    gw = stripe.gateway
    cat = catalog(gw)
    cus = customer(gw)
    params = checkout_params(cus, cat.team)
    gw.update_price(cat.team["id"], {"active": False})

    rejected(lambda: gw.create_checkout_session(params, idempotency_key="checkout-1"), 400)

    # Stripe keeps a refusal under its key: even once the price is active again, only a
    # new key (checkout makes one per request) gets a session.
    gw.update_price(cat.team["id"], {"active": True})
    rejected(lambda: gw.create_checkout_session(params, idempotency_key="checkout-1"), 400)
    assert gw.create_checkout_session(params, idempotency_key="checkout-2")["status"] == "open"


def test_a_portal_session_is_a_hosted_page_for_the_customer(stripe: Adapter) -> None:
    gw = stripe.gateway
    cus = customer(gw)
    params = {"customer": cus["id"], "return_url": SUCCESS}

    session = gw.create_portal_session(params, idempotency_key="portal-1")

    assert session["object"] == "billing_portal.session"
    assert session["url"].startswith("https://")
    assert (session["customer"], session["return_url"]) == (cus["id"], SUCCESS)
    assert gw.create_portal_session(params, idempotency_key="portal-1") == session
    assert gw.create_portal_session(params, idempotency_key="portal-2")["id"] != session["id"]


# -- events -------------------------------------------------------------------------------


def test_undelivered_events_are_listed_from_the_bound_on(stripe: Adapter) -> None:
    for n, (created, delivered) in enumerate(
        [(100, False), (200, False), (300, True), (50, False)]
    ):
        event = {
            "id": f"evt_{n}",
            "object": "event",
            "type": "invoice.paid",
            "created": created,
            "livemode": False,
            "data": {"object": {"object": "invoice", "id": f"in_{n}", "customer": "cus_1"}},
        }
        stripe.seed_event(event, delivered)

    events = stripe.gateway.list_undelivered_events(created_gte=100)

    assert [e["id"] for e in events] == ["evt_1", "evt_0"]
    assert events[1]["data"]["object"]["customer"] == "cus_1"
    assert stripe.gateway.list_undelivered_events(created_gte=201) == []
