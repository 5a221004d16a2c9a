"""End to end on the local stack: Stripe-signed webhooks into the real functions-framework
processes (webhook and subscriber), then billing-ops on what they produced.

A malformed event passes the webhook (which only reads the envelope) and is dead-lettered
by the subscriber; on-call finds it with `dlq list/show`, a replay without a fix sends it
straight back, and `purge` removes it with an audit record.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner
from google.cloud import firestore

from functions import composition
from functions.adapters.firestore_audit import AUDIT
from functions.config import reset_settings_cache
from functions.entrypoints.cli.main import cli
from infra.local import scenarios
from infra.local.emulators import Emulators
from infra.local.signing import sign
from infra.local.stack import LocalStack

pytestmark = pytest.mark.emulator
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.3)


@pytest.fixture
def stack(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    secret = f"whsec_{secrets.token_hex(16)}"
    with LocalStack(emulators=emulators, env={"STRIPE_WEBHOOK_SECRET": secret}) as running:
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", running.project)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", secret)
        monkeypatch.setenv("BILLING_OPS_ACTOR", "oncall@example.com")
        reset_settings_cache()
        composition.reset()
        yield running
    composition.reset()
    reset_settings_cache()


def post(stack: LocalStack, body: bytes) -> int:
    secret = stack.env["STRIPE_WEBHOOK_SECRET"]
    request = urllib.request.Request(
        stack.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, [secret], int(time.time())),
        },
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        status: int = response.status
        return status


def ops(*args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_webhook_to_subscriber_to_billing_ops(stack: LocalStack) -> None:
    customer = f"cus_e2e{uuid.uuid4().hex[:8]}"
    story = scenarios.build(
        "checkout_active", customer, f"acct_{customer[4:]}", start=int(time.time()) - 3600
    )
    for raw in story.events:
        assert post(stack, json.dumps(raw).encode()) == 200

    def active() -> Any:
        # Until the subscriber has run, the account is unknown (exit 1): keep polling.
        result = CliRunner().invoke(cli, ["account", "show", story.account_id, "--json"])
        if result.exit_code != 0:
            return None
        shown = json.loads(result.stdout)
        return shown if shown["record"]["status"] == story.expected.status else None

    shown = eventually(active)
    assert shown["record"]["access"] == story.expected.access.value
    assert shown["pending_outbox"] == 0

    # A valid envelope the domain can never apply: a seat quantity beyond the bound
    # (schemas/catalog.py), which the subscriber dead-letters at once.
    broken = json.loads(json.dumps(story.events[0]))
    broken["id"] = f"evt_broken{uuid.uuid4().hex[:8]}"
    broken["data"]["object"]["items"]["data"][0]["quantity"] = 10**12
    assert post(stack, json.dumps(broken).encode()) == 200
    (row,) = eventually(lambda: ops("dlq", "list"))
    assert row["event_id"] == broken["id"]
    assert row["customer"] == customer
    assert row["reason_code"] == "invalid_payload"

    def recorded() -> Any:
        # The subscriber publishes the dead letter first and records the failure right after.
        shown = ops("dlq", "show", broken["id"])
        return shown if shown["last_error"] else None

    shown_dl = eventually(recorded)
    assert "quantity" in shown_dl["last_error"]["reason"]
    assert shown_dl["messages"][0]["attributes"]["event_type"] == broken["type"]

    # Replaying without fixing the cause: it is republished and comes straight back.
    replayed = ops("dlq", "replay", broken["id"])
    assert list(replayed["republished"]) == [broken["id"]]

    def returned() -> Any:
        # The old dead letter's ack can lag the republish: wait for the new one alone.
        rows = ops("dlq", "list")
        return rows if len(rows) == 1 and rows[0]["message_id"] != row["message_id"] else None

    (back,) = eventually(returned)
    assert back["event_id"] == broken["id"]

    ops("dlq", "purge", broken["id"], "--reason", "malformed test event", "--yes")
    assert ops("dlq", "list") == []
    db = firestore.Client(project=stack.project)
    actions = sorted((d.to_dict() or {}).get("action", "") for d in db.collection(AUDIT).stream())
    assert actions == ["dlq.purge", "dlq.replay"]
    # The customer was never affected by the broken event.
    assert ops("account", "show", customer)["record"]["status"] == story.expected.status
