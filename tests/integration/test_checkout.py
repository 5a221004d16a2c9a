"""The checkout, portal and plan-change functions through the real functions-framework,
against the local Stripe server and the Firestore emulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from functions import composition
from functions.adapters.firestore_accounts import FirestoreAccountStore
from functions.entrypoints.auth import issue_token
from tests.integration.conftest import CANCEL, RETURN, SECRET, SUCCESS, Caller, price_id
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator

# -- checkout -------------------------------------------------------------------------


def test_checkout_creates_customer_link_and_subscription_session(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    resp = checkout_fn(
        "create_checkout_session",
        {"account_id": "acct_1", "plan": "team", "add_ons": ["lineage"], "seats": 2},
        account="acct_1",
    )

    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["url"].startswith("https://checkout.stripe.com/")
    assert out["trial_days"] == 30
    [customer_req] = stripe_server.requests_to("POST", "/v1/customers")
    assert customer_req.params == {"metadata": {"account_id": "acct_1"}}
    assert customer_req.idempotency_key == "customer-for-account-acct_1"
    [customer] = stripe_server.state.customers.values()
    [session_req] = stripe_server.requests_to("POST", "/v1/checkout/sessions")
    p = session_req.params
    assert session_req.idempotency_key
    assert p["mode"] == "subscription"
    assert p["customer"] == customer["id"]
    assert p["client_reference_id"] == "acct_1"
    assert p["success_url"] == SUCCESS and p["cancel_url"] == CANCEL
    assert p["subscription_data"]["trial_period_days"] == 30
    assert p["subscription_data"]["metadata"]["account_id"] == "acct_1"
    assert p["line_items"] == [
        {"price": price_id(stripe_server, "dataface_team_monthly"), "quantity": 1},
        {"price": price_id(stripe_server, "dataface_addon_lineage_monthly"), "quantity": 1},
        {"price": price_id(stripe_server, "dataface_addon_seat_monthly"), "quantity": 2},
    ]
    link = account_store.get("acct_1")
    assert link is not None
    assert link.customer_id == customer["id"] and link.trial_used is True


def test_second_checkout_reuses_customer_and_gets_no_second_trial(
    checkout_fn: Caller, stripe_server: StripeServer
) -> None:
    body = {"account_id": "acct_2", "plan": "starter"}
    first = checkout_fn("create_checkout_session", body, account="acct_2")
    second = checkout_fn("create_checkout_session", body, account="acct_2")

    assert first.status_code == second.status_code == 200
    assert first.get_json()["trial_days"] == 30
    assert second.get_json()["trial_days"] == 0
    assert len(stripe_server.state.customers) == 1
    sessions = stripe_server.requests_to("POST", "/v1/checkout/sessions")
    assert len(sessions) == 2
    assert "trial_period_days" not in sessions[1].params["subscription_data"]
    assert sessions[0].params["customer"] == sessions[1].params["customer"]


def test_no_trial_when_the_customer_had_one_elsewhere(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    stripe_server.seed_customer("cus_old", {"account_id": "acct_old"})
    account_store.link("acct_old", "cus_old", 1)
    old = stripe_server.seed_subscription(
        "cus_old", [("dataface_team_monthly", 1)], status="canceled"
    )
    old["trial_end"] = 1_700_000_000

    resp = checkout_fn(
        "create_checkout_session", {"account_id": "acct_old", "plan": "team"}, account="acct_old"
    )

    assert resp.status_code == 200
    assert resp.get_json()["trial_days"] == 0
    [session] = stripe_server.requests_to("POST", "/v1/checkout/sessions")
    assert "trial_period_days" not in session.params["subscription_data"]
    assert session.params["customer"] == "cus_old"


def test_concurrent_first_checkouts_create_one_customer(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    results: list[int] = []

    def run() -> None:
        # Separate clients: flask test clients are not meant to be shared across threads.
        mine = Caller(checkout_fn._source)
        resp = mine(
            "create_checkout_session", {"account_id": "acct_c", "plan": "team"}, account="acct_c"
        )
        results.append(resp.status_code)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert results == [200, 200, 200]
    assert len(stripe_server.state.customers) == 1
    link = account_store.get("acct_c")
    assert link is not None
    assert link.customer_id == next(iter(stripe_server.state.customers))


def test_checkout_refused_when_account_already_subscribed(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    stripe_server.seed_customer("cus_sub", {"account_id": "acct_s"})
    account_store.link("acct_s", "cus_sub", 1)
    stripe_server.seed_subscription("cus_sub", [("dataface_team_monthly", 1)])

    resp = checkout_fn(
        "create_checkout_session", {"account_id": "acct_s", "plan": "business"}, account="acct_s"
    )

    assert resp.status_code == 409
    assert resp.get_json()["error"] == "already_subscribed"
    assert stripe_server.requests_to("POST", "/v1/checkout/sessions") == []


def test_rate_limited_session_create_is_retried_once_created(
    checkout_fn: Caller, stripe_server: StripeServer
) -> None:
    stripe_server.fail_next(1, status=429, path_prefix="/v1/checkout/sessions")

    resp = checkout_fn(
        "create_checkout_session", {"account_id": "acct_r", "plan": "team"}, account="acct_r"
    )

    assert resp.status_code == 200
    attempts = stripe_server.requests_to("POST", "/v1/checkout/sessions")
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert len(stripe_server.state.checkout_sessions) == 1


# -- rejected requests make no Stripe call ---------------------------------------------


@pytest.mark.parametrize(
    ("target", "body", "kwargs", "status"),
    [
        ("create_checkout_session", {"account_id": "a1", "plan": "team"}, {}, 401),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team"},
            {"token": issue_token("a1", "w" * 40)},
            401,
        ),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team"},
            {"token": issue_token("a1", SECRET, now=1_000_000)},
            401,
        ),
        ("create_checkout_session", {"account_id": "a1", "plan": "team"}, {"account": "a2"}, 403),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team"},
            {"account": "a1", "method": "GET"},
            405,
        ),
        ("create_checkout_session", "not json", {"account": "a1"}, 400),
        ("create_checkout_session", ["a1"], {"account": "a1"}, 400),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "platinum"},
            {"account": "a1"},
            422,
        ),
        ("create_checkout_session", {"account_id": "a1"}, {"account": "a1"}, 422),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team", "seats": -1},
            {"account": "a1"},
            422,
        ),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team", "add_ons": ["lineage", "lineage"]},
            {"account": "a1"},
            422,
        ),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team", "add_ons": ["extra_seat"]},
            {"account": "a1"},
            422,
        ),
        (
            "create_checkout_session",
            {"account_id": "a1", "plan": "team", "customer_id": "cus_x"},
            {"account": "a1"},
            422,
        ),
        (
            "create_checkout_session",
            {"account_id": "../a1", "plan": "team"},
            {"account": "../a1"},
            422,
        ),
        (
            "create_portal_session",
            {"account_id": "a1", "customer": "cus_x"},
            {"account": "a1"},
            422,
        ),
        ("create_portal_session", {"account_id": "a1"}, {}, 401),
        (
            "change_subscription",
            {"account_id": "a1", "plan": "team", "seats": "many"},
            {"account": "a1"},
            422,
        ),
        ("change_subscription", {"account_id": "a1", "plan": "team"}, {"account": "a9"}, 403),
    ],
)
def test_bad_requests_get_4xx_and_make_no_stripe_call(
    checkout_fn: Caller,
    stripe_server: StripeServer,
    target: str,
    body: Any,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    resp = checkout_fn(target, body, **kwargs)

    assert resp.status_code == status, resp.get_data(as_text=True)
    payload = resp.get_json()
    assert payload["error"] and payload["message"]
    if status == 422:
        assert payload["errors"]
    assert stripe_server.requests == []


# -- portal ---------------------------------------------------------------------------


def test_portal_uses_the_accounts_own_customer_and_configured_return_url(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    stripe_server.seed_customer("cus_a")
    stripe_server.seed_customer("cus_b")
    account_store.link("acct_a", "cus_a", 1)
    account_store.link("acct_b", "cus_b", 1)

    resp = checkout_fn("create_portal_session", {"account_id": "acct_a"}, account="acct_a")

    assert resp.status_code == 200
    assert resp.get_json()["url"].startswith("https://billing.stripe.com/")
    [req] = stripe_server.requests_to("POST", "/v1/billing_portal/sessions")
    assert req.params == {"customer": "cus_a", "return_url": RETURN}
    assert req.idempotency_key


def test_account_cannot_open_another_accounts_portal(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    stripe_server.seed_customer("cus_victim")
    account_store.link("acct_victim", "cus_victim", 1)

    resp = checkout_fn(
        "create_portal_session", {"account_id": "acct_victim"}, account="acct_attacker"
    )

    assert resp.status_code == 403
    assert stripe_server.requests == []


def test_portal_for_unknown_account_is_404_without_stripe_call(
    checkout_fn: Caller, stripe_server: StripeServer
) -> None:
    resp = checkout_fn("create_portal_session", {"account_id": "acct_new"}, account="acct_new")

    assert resp.status_code == 404
    assert stripe_server.requests == []


# -- plan changes ---------------------------------------------------------------------


@pytest.fixture
def subscribed(stripe_server: StripeServer, account_store: FirestoreAccountStore) -> dict[str, Any]:
    stripe_server.seed_customer("cus_p", {"account_id": "acct_p"})
    account_store.link("acct_p", "cus_p", 1)
    sub = stripe_server.seed_subscription(
        "cus_p",
        [
            ("dataface_team_monthly", 1),
            ("dataface_addon_lineage_monthly", 1),
            ("dataface_addon_seat_monthly", 2),
        ],
        period_start=1_800_000_000,
        period_end=1_802_592_000,
    )
    stripe_server.clear_requests()
    return sub


def test_upgrade_applies_now_with_prorations(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    items = {i["price"]["lookup_key"]: i["id"] for i in subscribed["items"]["data"]}

    resp = checkout_fn(
        "change_subscription",
        {
            "account_id": "acct_p",
            "plan": "business",
            "add_ons": ["lineage", "alert_history"],
            "seats": 2,
        },
        account="acct_p",
    )

    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["result"] == "applied"
    [update] = stripe_server.requests_to("POST", f"/v1/subscriptions/{subscribed['id']}")
    assert update.params["proration_behavior"] == "create_prorations"
    assert update.idempotency_key
    assert update.params["items"] == [
        {
            "id": items["dataface_team_monthly"],
            "price": price_id(stripe_server, "dataface_business_monthly"),
            "quantity": 1,
        },
        {
            "id": items["dataface_addon_lineage_monthly"],
            "price": price_id(stripe_server, "dataface_addon_lineage_monthly"),
            "quantity": 1,
        },
        {
            "id": items["dataface_addon_seat_monthly"],
            "price": price_id(stripe_server, "dataface_addon_seat_monthly"),
            "quantity": 2,
        },
        {"price": price_id(stripe_server, "dataface_addon_alert_history_monthly"), "quantity": 1},
    ]
    now = {
        i["price"]["lookup_key"]: i["quantity"]
        for i in stripe_server.state.subscriptions[subscribed["id"]]["items"]["data"]
    }
    assert now == {
        "dataface_business_monthly": 1,
        "dataface_addon_lineage_monthly": 1,
        "dataface_addon_seat_monthly": 2,
        "dataface_addon_alert_history_monthly": 1,
    }
    assert stripe_server.requests_to("POST", "/v1/subscription_schedules") == []


def test_more_seats_on_same_plan_is_an_immediate_change(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    resp = checkout_fn(
        "change_subscription",
        {"account_id": "acct_p", "plan": "team", "add_ons": ["lineage"], "seats": 5},
        account="acct_p",
    )

    assert resp.get_json()["result"] == "applied"
    [update] = stripe_server.requests_to("POST", "/v1/subscriptions/")
    assert update.params["proration_behavior"] == "create_prorations"


def test_downgrade_is_scheduled_for_period_end(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    resp = checkout_fn(
        "change_subscription", {"account_id": "acct_p", "plan": "starter"}, account="acct_p"
    )

    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["result"] == "scheduled" and out["effective_at"] == 1_802_592_000
    # The subscription itself is untouched until the phase ends.
    assert stripe_server.requests_to("POST", "/v1/subscriptions/") == []
    [create, update] = stripe_server.requests_to("POST", "/v1/subscription_schedules")
    assert create.params == {"from_subscription": subscribed["id"]}
    assert create.idempotency_key and update.idempotency_key
    phases = update.params["phases"]
    assert update.params["end_behavior"] == "release"
    assert phases[0]["start_date"] == 1_800_000_000
    assert phases[0]["end_date"] == 1_802_592_000
    assert sorted(i["price"] for i in phases[0]["items"]) == sorted(
        i["price"]["id"] for i in subscribed["items"]["data"]
    )
    assert phases[1]["items"] == [
        {"price": price_id(stripe_server, "dataface_starter_monthly"), "quantity": 1}
    ]
    assert phases[1]["proration_behavior"] == "none"


def test_upgrade_after_pending_downgrade_releases_the_schedule(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    checkout_fn(
        "change_subscription", {"account_id": "acct_p", "plan": "starter"}, account="acct_p"
    )
    stripe_server.clear_requests()

    resp = checkout_fn(
        "change_subscription", {"account_id": "acct_p", "plan": "business"}, account="acct_p"
    )

    assert resp.get_json()["result"] == "applied"
    paths = [r.path for r in stripe_server.writes()]
    assert paths[0].endswith("/release") and paths[1] == f"/v1/subscriptions/{subscribed['id']}"
    assert stripe_server.state.subscriptions[subscribed["id"]]["schedule"] is None


def test_unchanged_target_makes_no_write(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    resp = checkout_fn(
        "change_subscription",
        {"account_id": "acct_p", "plan": "team", "add_ons": ["lineage"], "seats": 2},
        account="acct_p",
    )

    assert resp.get_json()["result"] == "no_change"
    assert stripe_server.writes() == []


def test_change_without_subscription_is_409_and_for_unknown_account_404(
    checkout_fn: Caller, stripe_server: StripeServer, account_store: FirestoreAccountStore
) -> None:
    stripe_server.seed_customer("cus_none")
    account_store.link("acct_none", "cus_none", 1)

    no_sub = checkout_fn(
        "change_subscription", {"account_id": "acct_none", "plan": "team"}, account="acct_none"
    )
    unknown = checkout_fn(
        "change_subscription", {"account_id": "acct_ghost", "plan": "team"}, account="acct_ghost"
    )

    assert no_sub.status_code == 409
    assert unknown.status_code == 404
    assert stripe_server.writes() == []


def test_double_submitted_add_on_is_added_once(
    checkout_fn: Caller, stripe_server: StripeServer, subscribed: dict[str, Any]
) -> None:
    body = {
        "account_id": "acct_p",
        "plan": "team",
        "add_ons": ["lineage", "alert_history"],
        "seats": 2,
    }
    results: list[str] = []

    def run() -> None:
        resp = Caller(checkout_fn._source)("change_subscription", body, account="acct_p")
        results.append(resp.get_json()["result"])

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert set(results) <= {"applied", "no_change"} and "applied" in results
    keys = [
        i["price"]["lookup_key"]
        for i in stripe_server.state.subscriptions[subscribed["id"]]["items"]["data"]
    ]
    assert keys.count("dataface_addon_alert_history_monthly") == 1


def test_missing_configuration_is_500_without_stripe_call(
    checkout_fn: Caller, stripe_server: StripeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHECKOUT_SUCCESS_URL")
    composition.reset()

    resp = checkout_fn(
        "create_checkout_session", {"account_id": "a1", "plan": "team"}, account="a1"
    )

    assert resp.status_code == 500
    assert resp.get_json()["error"] == "misconfigured"
    assert "CHECKOUT_SUCCESS_URL" not in resp.get_data(as_text=True)
    assert stripe_server.requests == []
