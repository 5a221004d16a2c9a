"""The SDK adapter against the local Stripe server: version pin, retries, pagination, reads."""

from __future__ import annotations

import json

import pytest
import stripe

from functions import stripe_events
from functions.adapters.stripe_gateway import STRIPE_API_VERSION, SdkStripeGateway, TokenBucket
from functions.errors import StripeRejected, StripeUnavailable
from tests.support.stripe_server import StripeServer


def make(server: StripeServer, **kwargs: float) -> SdkStripeGateway:
    return SdkStripeGateway(
        "sk_test_local", api_base=server.url, backoff_initial=0.01, backoff_max=0.05, **kwargs
    )


def seed_catalog_price(gateway: SdkStripeGateway, key: str = "lk") -> dict[str, object]:
    product = gateway.create_product({"name": "P"}, idempotency_key=f"prod-{key}")
    return gateway.create_price(
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "lookup_key": key,
        },
        idempotency_key=f"price-{key}",
    )


def test_api_version_is_pinned_to_the_sdks_and_sent_on_every_request(
    stripe_server: StripeServer,
) -> None:
    # An SDK upgrade that moves its API version must be a deliberate change here too.
    assert stripe._api_version._ApiVersion.CURRENT == STRIPE_API_VERSION
    gateway = make(stripe_server)
    seed_catalog_price(gateway)
    gateway.list_products()
    assert stripe_server.requests
    assert {r.headers.get("stripe-version") for r in stripe_server.requests} == {STRIPE_API_VERSION}


def test_creates_require_an_idempotency_key(stripe_server: StripeServer) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        make(stripe_server).create_customer({}, idempotency_key="")
    assert stripe_server.requests == []


def test_same_idempotency_key_creates_one_object(stripe_server: StripeServer) -> None:
    gateway = make(stripe_server)
    first = gateway.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k")
    again = gateway.create_customer({"metadata": {"account_id": "a"}}, idempotency_key="k")
    assert first["id"] == again["id"]
    assert len(stripe_server.state.customers) == 1


def test_429_is_retried_with_backoff_until_success(stripe_server: StripeServer) -> None:
    slept: list[float] = []
    gateway = SdkStripeGateway(
        "sk_test_local", api_base=stripe_server.url, backoff_initial=0.2, sleep=slept.append
    )
    stripe_server.fail_next(3, status=429)

    customer = gateway.create_customer({}, idempotency_key="cust-1")

    assert [r.status for r in stripe_server.requests] == [429, 429, 429, 200]
    assert {r.idempotency_key for r in stripe_server.requests} == {"cust-1"}
    assert customer["id"] in stripe_server.state.customers
    backoff = [s for s in slept if s >= 0.1]  # ignore token-bucket waits
    assert len(backoff) == 3
    assert backoff[0] < backoff[2]  # exponential, jittered between half and full delay
    assert 0.1 <= backoff[0] <= 0.2 and 0.4 <= backoff[2] <= 0.8


def test_persistent_429_becomes_transient_error(stripe_server: StripeServer) -> None:
    gateway = SdkStripeGateway(
        "sk_test_local",
        api_base=stripe_server.url,
        max_rate_limit_retries=2,
        sleep=lambda _s: None,
    )
    stripe_server.fail_next(10, status=429)

    with pytest.raises(StripeUnavailable):
        gateway.list_products()
    assert len(stripe_server.requests) == 3


def test_5xx_is_retried_by_the_sdk(stripe_server: StripeServer) -> None:
    stripe_server.fail_next(1, status=500)
    customer = make(stripe_server).create_customer({}, idempotency_key="c5")
    assert [r.status for r in stripe_server.requests] == [500, 200]
    assert customer["id"] in stripe_server.state.customers


def test_4xx_is_a_permanent_rejection(stripe_server: StripeServer) -> None:
    with pytest.raises(StripeRejected) as info:
        make(stripe_server).update_subscription("sub_missing", {}, idempotency_key="u1")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert len(stripe_server.requests) == 1


def test_lookup_key_listing_and_transfer(stripe_server: StripeServer) -> None:
    gateway = make(stripe_server)
    old = seed_catalog_price(gateway, "dataface_team_monthly")
    new = gateway.create_price(
        {
            "product": old["product"],
            "currency": "usd",
            "unit_amount": 200,
            "recurring": {"interval": "month"},
            "lookup_key": "dataface_team_monthly",
            "transfer_lookup_key": True,
        },
        idempotency_key="new-price",
    )
    listed = gateway.list_prices(lookup_keys=["dataface_team_monthly", "other"])
    assert [p["id"] for p in listed] == [new["id"]]
    req = stripe_server.requests_to("GET", "/v1/prices")[-1]
    assert req.params["lookup_keys"] == ["dataface_team_monthly", "other"]
    assert gateway.list_prices(lookup_keys=[]) == []


def test_customer_subscriptions_paginate_with_status_all(stripe_server: StripeServer) -> None:
    gateway = make(stripe_server)
    seed_catalog_price(gateway, "plan")
    stripe_server.seed_customer("cus_many")
    seeded = {
        stripe_server.seed_subscription("cus_many", [("plan", 1)], status=status)["id"]
        for status in ["canceled"] * 120 + ["active"] * 5
    }
    stripe_server.seed_subscription("cus_other", [("plan", 1)])
    stripe_server.clear_requests()

    subs = gateway.list_customer_subscriptions("cus_many")

    assert {s["id"] for s in subs} == seeded
    assert len(subs) == 125
    pages = stripe_server.requests_to("GET", "/v1/subscriptions")
    assert len(pages) == 2
    assert pages[0].params == {"customer": "cus_many", "status": "all", "limit": 100}
    assert pages[1].params["starting_after"] == subs[99]["id"]
    # Items come back as Stripe returns them, with prices expanded.
    assert subs[0]["items"]["data"][0]["price"]["lookup_key"] == "plan"


def test_undelivered_events_filter_and_created_bound(stripe_server: StripeServer) -> None:
    template = stripe_server.templates["event"]
    for i, (created, delivered) in enumerate(
        [(100, False), (200, False), (300, True), (50, False)]
    ):
        stripe_server.seed_event(
            {**template, "id": f"evt_{i}", "created": created, "type": "invoice.paid"},
            delivered=delivered,
        )

    events = make(stripe_server).list_undelivered_events(created_gte=100)

    assert sorted(e["id"] for e in events) == ["evt_0", "evt_1"]
    req = stripe_server.requests_to("GET", "/v1/events")[0]
    assert req.params["delivery_success"] is False
    assert req.params["created"] == {"gte": 100}


def test_events_come_back_in_wire_format_so_catch_up_can_re_encode_them(
    stripe_server: StripeServer,
) -> None:
    # The SDK parses decimal strings into Decimal; json.dumps of that raised TypeError and
    # left every such event out of catch-up (found by the Stripe-simulator e2e test).
    price = {"id": "price_1", "object": "price", "unit_amount_decimal": "14900.5"}
    line = {"id": "il_1", "object": "line_item", "pricing": {"unit_amount_decimal": "12.25"}}
    invoice = {"id": "in_1", "object": "invoice", "customer": "cus_1", "lines": {"data": [line]}}
    stripe_server.seed_event(
        {
            "id": "evt_dec",
            "object": "event",
            "type": "invoice.paid",
            "created": 100,
            "livemode": False,
            "data": {"object": {**invoice, "price": price}},
        },
        delivered=False,
    )

    [event] = make(stripe_server).list_undelivered_events(created_gte=0)

    assert event["data"]["object"]["price"]["unit_amount_decimal"] == "14900.5"
    assert json.loads(json.dumps(event))["id"] == "evt_dec"
    message = stripe_events.from_api(event, arrived_by=stripe_events.CATCH_UP)
    assert json.loads(message.data)["data"]["object"]["lines"]["data"][0]["pricing"] == {
        "unit_amount_decimal": "12.25"
    }


def test_token_bucket_paces_bursts() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=10, capacity=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(5)]

    assert waits[:2] == [0.0, 0.0]
    assert all(w == pytest.approx(0.1) for w in waits[2:])
    assert sum(slept) == pytest.approx(0.3)
