"""Catalog sync against the local Stripe server: creates, idempotence, price changes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from functions import composition
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.entrypoints.cli.main import cli
from functions.services.catalog_sync import apply_sync, plan_sync
from statemachine.catalog import CATALOG
from tests.support.stripe_server import StripeServer

ITEMS = [*CATALOG.plans, *CATALOG.add_ons]


@pytest.fixture
def gateway(stripe_server: StripeServer) -> SdkStripeGateway:
    return SdkStripeGateway("sk_test_local", api_base=stripe_server.url, backoff_initial=0.01)


@pytest.fixture
def cli_env(stripe_server: StripeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-catalog")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_local")
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
    composition.reset()
    yield
    composition.reset()


def test_first_sync_creates_every_product_and_price(
    stripe_server: StripeServer, gateway: SdkStripeGateway
) -> None:
    apply_sync(plan_sync(CATALOG, gateway), gateway)

    products = {p["metadata"]["dataface_id"]: p for p in stripe_server.state.products.values()}
    prices = {p["lookup_key"]: p for p in stripe_server.state.prices.values()}
    assert set(products) == {i.id for i in ITEMS}
    assert set(prices) == {i.lookup_key for i in ITEMS}
    for item in ITEMS:
        price = prices[item.lookup_key]
        assert price["unit_amount"] == item.monthly_amount_cents
        assert price["currency"] == "usd"
        assert price["recurring"]["interval"] == "month"
        assert price["product"] == products[item.id]["id"]
        assert price["metadata"]["dataface_id"] == item.id
    assert products["starter"]["metadata"]["dataface_kind"] == "plan"
    assert products["starter"]["metadata"]["dataface_trial_days"] == "30"
    assert products["lineage"]["metadata"]["dataface_kind"] == "add_on"
    assert prices["dataface_team_monthly"]["unit_amount"] == 19900
    # Every create carried an idempotency key and the pinned API version.
    creates = [r for r in stripe_server.requests if r.method == "POST"]
    assert len(creates) == 2 * len(ITEMS)
    assert all(r.idempotency_key for r in creates)
    assert len({r.idempotency_key for r in creates}) == len(creates)


def test_second_sync_makes_no_write(stripe_server: StripeServer, gateway: SdkStripeGateway) -> None:
    apply_sync(plan_sync(CATALOG, gateway), gateway)
    stripe_server.clear_requests()

    changes = plan_sync(CATALOG, gateway)
    apply_sync(changes, gateway)

    assert all(c.action == "no_change" for c in changes)
    assert stripe_server.requests, "the sync must still read Stripe"
    assert stripe_server.writes() == []


def test_price_change_creates_new_price_transfers_key_and_archives_old(
    stripe_server: StripeServer, gateway: SdkStripeGateway
) -> None:
    apply_sync(plan_sync(CATALOG, gateway), gateway)
    old = next(
        p for p in stripe_server.state.prices.values() if p["lookup_key"] == "dataface_team_monthly"
    )
    changed = CATALOG.model_copy(
        update={
            "plans": tuple(
                p.model_copy(update={"monthly_amount_cents": 21900}) if p.id == "team" else p
                for p in CATALOG.plans
            )
        }
    )
    stripe_server.clear_requests()

    changes = plan_sync(changed, gateway)
    apply_sync(changes, gateway)

    assert [(c.action, c.lookup_key) for c in changes if c.is_write] == [
        ("create_price", "dataface_team_monthly"),
        ("archive_price", "dataface_team_monthly"),
    ]
    create = stripe_server.requests_to("POST", "/v1/prices")[0]
    assert create.path == "/v1/prices"
    assert create.params["transfer_lookup_key"] is True
    assert create.params["unit_amount"] == 21900
    archived = stripe_server.state.prices[old["id"]]
    assert archived["active"] is False
    assert archived["lookup_key"] is None
    current = [
        p for p in stripe_server.state.prices.values() if p["lookup_key"] == "dataface_team_monthly"
    ]
    assert len(current) == 1
    assert current[0]["unit_amount"] == 21900 and current[0]["active"] is True
    assert not any(r.method == "DELETE" for r in stripe_server.requests)
    # And the new state is stable.
    stripe_server.clear_requests()
    apply_sync(plan_sync(changed, gateway), gateway)
    assert stripe_server.writes() == []


def test_drifted_metadata_is_updated_in_place(
    stripe_server: StripeServer, gateway: SdkStripeGateway
) -> None:
    apply_sync(plan_sync(CATALOG, gateway), gateway)
    product = next(
        p
        for p in stripe_server.state.products.values()
        if p["metadata"]["dataface_id"] == "business"
    )
    product["name"] = "Renamed by hand"
    stripe_server.clear_requests()

    apply_sync(plan_sync(CATALOG, gateway), gateway)

    writes = stripe_server.writes()
    assert [(w.path, w.params) for w in writes] == [
        (f"/v1/products/{product['id']}", {"name": "Business"})
    ]


def test_cli_dry_run_prints_diff_and_writes_nothing(
    stripe_server: StripeServer, cli_env: None
) -> None:
    result = CliRunner().invoke(cli, ["catalog", "sync", "--dry-run", "--json"])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert sorted(line["action"] for line in lines) == sorted(
        ["create_product"] * len(ITEMS) + ["create_price"] * len(ITEMS)
    )
    assert stripe_server.writes() == []


def test_cli_sync_applies_then_reports_no_change(
    stripe_server: StripeServer, cli_env: None
) -> None:
    first = CliRunner().invoke(cli, ["catalog", "sync"])
    assert first.exit_code == 0, first.output
    assert f"applied {2 * len(ITEMS)} change(s)" in first.output
    stripe_server.clear_requests()

    second = CliRunner().invoke(cli, ["catalog", "sync"])

    assert second.exit_code == 0, second.output
    assert f"0 change(s), {2 * len(ITEMS)} unchanged" in second.output
    assert stripe_server.writes() == []


def test_rate_limited_sync_is_retried_and_creates_once(
    stripe_server: StripeServer, gateway: SdkStripeGateway
) -> None:
    changes = plan_sync(CATALOG, gateway)
    stripe_server.fail_next(2, status=429, path_prefix="/v1/prices", method="POST")

    apply_sync(changes, gateway)

    rejected = [r for r in stripe_server.requests if r.status == 429]
    assert len(rejected) == 2
    assert all(r.path == "/v1/prices" and r.idempotency_key for r in rejected)
    # Both attempts reused one idempotency key, which then succeeded exactly once.
    key = rejected[0].idempotency_key
    attempts = [r for r in stripe_server.requests if r.idempotency_key == key]
    assert [r.status for r in attempts] == [429, 429, 200]
    assert len(stripe_server.state.prices) == len(ITEMS)


def test_cli_dry_run_shows_a_price_change_as_new_price_and_archive(
    stripe_server: StripeServer, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CliRunner().invoke(cli, ["catalog", "sync"]).exit_code == 0
    changed = CATALOG.model_copy(
        update={
            "plans": tuple(
                p.model_copy(update={"monthly_amount_cents": 21900}) if p.id == "team" else p
                for p in CATALOG.plans
            )
        }
    )
    monkeypatch.setattr("functions.entrypoints.cli.catalog.CATALOG", changed)
    stripe_server.clear_requests()

    result = CliRunner().invoke(cli, ["catalog", "sync", "--dry-run"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith("create_price")
        and "dataface_team_monthly" in line
        and "19900 usd -> 21900 usd; lookup key transfers" in line
        for line in lines
    )
    assert any(
        line.startswith("archive_price") and "dataface_team_monthly" in line for line in lines
    )
    # The team price is replaced; its product and every other object are unchanged.
    assert lines[-1] == f"2 change(s), {2 * len(ITEMS) - 1} unchanged (dry run: nothing written)"
    assert stripe_server.writes() == []
