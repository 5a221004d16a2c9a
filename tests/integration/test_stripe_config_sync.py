"""`billing-ops stripe endpoint sync` and `stripe portal sync` against the local Stripe server:
creates, drift reports, idempotence counted in write requests, dry runs that write nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import stripe
from click.testing import CliRunner, Result

from functions import composition
from functions.adapters.stripe_gateway import STRIPE_API_VERSION, SdkStripeGateway
from functions.entrypoints.cli.main import cli
from functions.services.catalog_sync import apply_sync, plan_sync
from functions.services.portal_sync import CANCELLATION_REASONS
from statemachine import HANDLED_EVENT_TYPES
from statemachine.catalog import CATALOG
from tests.support.stripe_server import StripeServer

URL = "https://europe-west1-demo.cloudfunctions.net/stripe-webhook"
OLD_VERSION = "2025-03-31.basil"


@pytest.fixture
def cli_env(stripe_server: StripeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-stripe-config")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_local")
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_URL", URL)
    composition.reset()
    yield
    composition.reset()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["stripe", *args])


def run_json(*args: str) -> tuple[int, dict[str, object]]:
    result = run(*args, "--json")
    # A ClickException's message goes after the JSON document: parse the document only.
    doc, _, _ = result.output.partition("\nError:")
    return result.exit_code, json.loads(doc)


def synced_catalog(server: StripeServer) -> None:
    gateway = SdkStripeGateway("sk_test_local", api_base=server.url)
    apply_sync(plan_sync(CATALOG, gateway), gateway)
    server.clear_requests()


# -- webhook endpoint --------------------------------------------------------------------


def test_endpoint_sync_creates_ours_then_a_second_run_writes_nothing(
    stripe_server: StripeServer, cli_env: None
) -> None:
    first = run("endpoint", "sync")
    assert first.exit_code == 0, first.output

    (endpoint,) = stripe_server.state.webhook_endpoints.values()
    assert endpoint["url"] == URL
    assert sorted(endpoint["enabled_events"]) == sorted(HANDLED_EVENT_TYPES)
    assert endpoint["api_version"] == STRIPE_API_VERSION == "2026-10-28.endive"
    assert "stripe-webhook-secret" in first.output and "DEPLOY.md" in first.output
    # Shown once by Stripe, never printed by us.
    assert "whsec_" not in first.output
    assert len(stripe_server.writes()) == 1
    stripe_server.clear_requests()

    second = run("endpoint", "sync")

    assert second.exit_code == 0, second.output
    assert second.output.startswith("no_change")
    assert stripe_server.writes() == []
    assert [r.method for r in stripe_server.requests] == ["GET"]


def test_endpoint_dry_run_reports_the_create_and_writes_nothing(
    stripe_server: StripeServer, cli_env: None
) -> None:
    code, doc = run_json("endpoint", "sync", "--dry-run")

    assert code == 0
    assert doc["action"] == "create" and doc["written"] is False
    assert doc["fields"] == {
        "url": URL,
        "enabled_events": sorted(HANDLED_EVENT_TYPES),
        "api_version": STRIPE_API_VERSION,
    }
    assert stripe_server.writes() == []


def test_endpoint_drift_events_fixed_api_version_reported_not_written(
    stripe_server: StripeServer, cli_env: None
) -> None:
    events = [*sorted(HANDLED_EVENT_TYPES - {"invoice.paid"}), "charge.succeeded"]
    old = stripe_server.seed_webhook_endpoint(
        url=URL, enabled_events=events, api_version=OLD_VERSION
    )

    code, doc = run_json("endpoint", "sync", "--dry-run")

    assert code == 1  # drift a sync cannot fix is an error, so release checks notice
    assert doc["missing_events"] == ["invoice.paid"]
    assert doc["extra_events"] == ["charge.succeeded"]
    assert doc["stale_api_version"] == OLD_VERSION and doc["needs_new_endpoint"] is True
    assert stripe_server.writes() == []

    applied = run("endpoint", "sync")

    assert applied.exit_code == 1
    assert "create a new endpoint" in applied.output
    (write,) = stripe_server.writes()
    # Only what Stripe lets an update change; the version stays as it was.
    assert write.path == f"/v1/webhook_endpoints/{old['id']}"
    assert set(write.params) == {"enabled_events"}
    assert sorted(old["enabled_events"]) == sorted(HANDLED_EVENT_TYPES)
    assert old["api_version"] == OLD_VERSION


def test_endpoint_replacement_on_the_pinned_version_then_old_one_disabled(
    stripe_server: StripeServer, cli_env: None, tmp_path: Path
) -> None:
    old = stripe_server.seed_webhook_endpoint(
        url=URL, enabled_events=sorted(HANDLED_EVENT_TYPES), api_version=OLD_VERSION
    )
    secret_file = tmp_path / "whsec"

    created = run("endpoint", "sync", "--create-replacement", "--secret-file", str(secret_file))

    assert created.exit_code == 0, created.output
    new = [e for e in stripe_server.state.webhook_endpoints.values() if e["id"] != old["id"]]
    assert [e["api_version"] for e in new] == [STRIPE_API_VERSION]
    assert secret_file.read_text().startswith("whsec_")
    assert os.stat(secret_file).st_mode & 0o777 == 0o600
    assert "whsec_" not in created.output and f"replaces {old['id']}" in created.output

    # Both deliver until the old one is disabled: reported as a second endpoint.
    code, doc = run_json("endpoint", "sync", "--dry-run")
    assert code == 1
    assert doc["endpoint_id"] == new[0]["id"] and doc["duplicates"] == [old["id"]]

    old["status"] = "disabled"
    stripe_server.clear_requests()
    final = run("endpoint", "sync")
    assert final.exit_code == 0, final.output
    assert stripe_server.writes() == []


def test_endpoint_second_endpoint_at_our_url_is_reported(
    stripe_server: StripeServer, cli_env: None
) -> None:
    events = sorted(HANDLED_EVENT_TYPES)
    ours = stripe_server.seed_webhook_endpoint(
        url=URL, enabled_events=events, api_version=STRIPE_API_VERSION
    )
    other = stripe_server.seed_webhook_endpoint(url=URL, enabled_events=["*"], api_version=None)
    stripe_server.seed_webhook_endpoint(url="https://elsewhere.example/hook", enabled_events=["*"])

    code, doc = run_json("endpoint", "sync")

    assert code == 1
    assert doc["endpoint_id"] == ours["id"] and doc["duplicates"] == [other["id"]]
    assert f"second endpoint {other['id']} points at {URL}" in doc["drift"]
    assert stripe_server.writes() == []


def test_endpoint_disabled_is_re_enabled(stripe_server: StripeServer, cli_env: None) -> None:
    ours = stripe_server.seed_webhook_endpoint(
        url=URL,
        enabled_events=sorted(HANDLED_EVENT_TYPES),
        api_version=STRIPE_API_VERSION,
        status="disabled",
    )

    result = run("endpoint", "sync")

    assert result.exit_code == 0, result.output
    assert ours["status"] == "enabled"
    assert [w.params for w in stripe_server.writes()] == [{"disabled": False}]


def test_endpoint_sync_needs_a_url(stripe_server: StripeServer, cli_env: None) -> None:
    os.environ.pop("STRIPE_WEBHOOK_URL")
    result = run("endpoint", "sync", "--dry-run")
    assert result.exit_code == 2 and "--url" in result.output


# -- billing portal ----------------------------------------------------------------------


def _plan_prices(server: StripeServer) -> list[tuple[str, list[str]]]:
    by_key = {p["lookup_key"]: p for p in server.state.prices.values()}
    return sorted(
        (by_key[plan.lookup_key]["product"], [by_key[plan.lookup_key]["id"]])
        for plan in CATALOG.plans
    )


def test_portal_sync_configures_the_default_then_writes_nothing(
    stripe_server: StripeServer, cli_env: None
) -> None:
    synced_catalog(stripe_server)
    default = stripe_server.seed_portal_configuration()

    first = run("portal", "sync")

    assert first.exit_code == 0, first.output
    features = default["features"]
    assert features["payment_method_update"]["enabled"] is True
    assert features["invoice_history"]["enabled"] is True
    cancel = features["subscription_cancel"]
    assert (cancel["enabled"], cancel["mode"], cancel["proration_behavior"]) == (
        True,
        "at_period_end",
        "none",
    )
    assert cancel["cancellation_reason"]["enabled"] is True
    assert cancel["cancellation_reason"]["options"] == list(CANCELLATION_REASONS)
    update = features["subscription_update"]
    assert update["enabled"] is True and update["default_allowed_updates"] == ["price"]
    # Plans only, each at its catalog price; add-ons are not switchable in the portal.
    assert sorted((p["product"], p["prices"]) for p in update["products"]) == _plan_prices(
        stripe_server
    )
    assert update["proration_behavior"] == "create_prorations"
    assert [c["type"] for c in update["schedule_at_period_end"]["conditions"]] == [
        "decreasing_item_amount",
        "shortening_interval",
    ]
    assert len(stripe_server.writes()) == 1
    stripe_server.clear_requests()

    second = run("portal", "sync")

    assert second.exit_code == 0, second.output
    assert second.output.startswith("no_change")
    assert stripe_server.writes() == []


def test_portal_dry_run_lists_the_diff_and_writes_nothing(
    stripe_server: StripeServer, cli_env: None
) -> None:
    synced_catalog(stripe_server)
    default = stripe_server.seed_portal_configuration()

    code, doc = run_json("portal", "sync", "--dry-run")

    assert code == 0
    assert doc["action"] == "update" and doc["configuration_id"] == default["id"]
    diff = doc["diff"]
    assert isinstance(diff, dict)
    # The fixture (a Dashboard default) has cancellation off and plan switching off.
    assert diff["subscription_cancel.enabled"] == {"stripe": False, "code": True}
    assert diff["subscription_update.enabled"] == {"stripe": False, "code": True}
    assert diff["payment_method_update.enabled"] == {"stripe": False, "code": True}
    assert "invoice_history.enabled" not in diff  # already on
    assert stripe_server.writes() == []


def test_portal_hand_edit_is_drift_and_is_put_back(
    stripe_server: StripeServer, cli_env: None
) -> None:
    synced_catalog(stripe_server)
    default = stripe_server.seed_portal_configuration()
    assert run("portal", "sync").exit_code == 0
    default["features"]["subscription_cancel"]["mode"] = "immediately"

    result = run("portal", "sync")

    assert result.exit_code == 0, result.output
    assert "subscription_cancel.mode: 'immediately' -> 'at_period_end'" in result.output
    assert default["features"]["subscription_cancel"]["mode"] == "at_period_end"


def test_portal_without_a_default_is_refused_not_given_a_second_configuration(
    stripe_server: StripeServer, cli_env: None
) -> None:
    synced_catalog(stripe_server)

    result = run("portal", "sync")

    assert result.exit_code == 1
    assert "no default portal configuration" in result.output
    assert "Customer portal" in result.output
    assert stripe_server.state.portal_configurations == {}
    assert stripe_server.writes() == []


def test_portal_sync_refuses_before_the_catalog_is_synced(
    stripe_server: StripeServer, cli_env: None
) -> None:
    stripe_server.seed_portal_configuration()

    result = run("portal", "sync")

    assert result.exit_code == 1
    assert "catalog sync" in result.output
    assert stripe_server.writes() == []


# -- the local server's wire format, through the SDK ---------------------------------------


def test_server_serves_both_resources_in_stripes_shape(stripe_server: StripeServer) -> None:
    client = stripe.StripeClient(
        "sk_test_local",
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": stripe_server.url},
    )
    v1 = client.v1
    created = v1.billing_portal.configurations.create(
        {"features": {"invoice_history": {"enabled": True}}, "metadata": {"k": "v"}}
    )
    assert created.object == "billing_portal.configuration" and created.is_default is False
    updated = v1.billing_portal.configurations.update(
        created.id, {"features": {"payment_method_update": {"enabled": True}}}
    )
    assert updated.features.payment_method_update.enabled is True
    assert updated.features.invoice_history.enabled is True  # merged, not replaced
    (listed,) = v1.billing_portal.configurations.list().data
    assert listed.id == created.id and listed.metadata.to_dict() == {"k": "v"}

    endpoint = v1.webhook_endpoints.create(
        {"url": URL, "enabled_events": ["invoice.paid"], "api_version": STRIPE_API_VERSION}
    )
    assert endpoint.object == "webhook_endpoint" and endpoint.secret.startswith("whsec_")
    (again,) = v1.webhook_endpoints.list().data
    assert again.id == endpoint.id and "secret" not in again
    assert again.api_version == STRIPE_API_VERSION
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: api_version"):
        v1.webhook_endpoints.update(endpoint.id, cast(Any, {"api_version": "2025-03-31.basil"}))
    stripe_server.all_requests.pop()  # the refused request above was sent on purpose
