"""Issue 17 rows 1, 6, 7, 8 and 9 through the real subscriber on the emulators.

Real FirestoreRepository and PubSubPublisher, the dead letters pulled from the ops
subscription as `billing-ops dlq` would. Each input that can never succeed must be
dead-lettered on its first attempt with its reason and leave the customer untouched.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions import stripe_events as events
from functions.adapters.firestore_accounts import FirestoreAccountStore
from functions.adapters.firestore_client import TIMEOUT, FirestoreAdapter
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.google_errors import google_call
from functions.config import CommonSettings
from functions.errors import Unstorable
from functions.services.subscriber import IncomingMessage, Subscriber
from infra.local.scenarios import SEAT, START, TEAM, subscription_event
from schemas.ids import storable_key
from tests.integration.subscriber_support import (
    entitlements,
    make_subscriber,
    message,
    new_project,
    reconciler,
)
from tests.support.pubsub import pull_all
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator

UPDATED = "customer.subscription.updated"
YEAR_2100 = 4_102_444_800


@pytest.fixture
def world(emulators: Any) -> Iterator[tuple[str, CommonSettings, Subscriber]]:
    project, settings = new_project()
    yield project, settings, make_subscriber(project, settings)


def event(created: int = START, **kw: Any) -> dict[str, Any]:
    raw = subscription_event(UPDATED, created, **kw)
    raw["id"] = f"evt_{uuid.uuid4().hex[:16]}"
    # Each customer its own account (the scenario builder names acct_one for all).
    raw["data"]["object"]["metadata"] = {"account_id": f"acct_{uuid.uuid4().hex[:12]}"}
    return raw


def dead_letters(project: str, settings: CommonSettings, expect: int) -> list[Any]:
    got = pull_all(project, settings.dead_letter_subscription, expect=expect, deadline=20)
    assert len(got) == expect, f"expected {expect} dead letters, got {len(got)}"
    return got


def test_row1_ids_firestore_cannot_store_are_dead_lettered_at_once(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, settings, subscriber = world
    bad_customers = ["cus_a/b", "..", "__x__", "cus_" + "a" * 10_000]
    inputs = [event(customer_id=c) for c in bad_customers]
    slash_account = event(customer_id="cus_slashacct")
    slash_account["data"]["object"]["metadata"] = {"account_id": "acct/evil"}
    long_id = event(customer_id="cus_longid")
    long_id["id"] = "evt_" + "a" * 10_000
    inputs += [slash_account, long_id]

    decisions = [subscriber.handle(message(raw)).decision for raw in inputs]

    assert decisions == ["dead_lettered"] * len(inputs)
    got = dead_letters(project, settings, len(inputs))
    repo = FirestoreRepository(project)
    for dead in got:
        assert dead.attributes[events.DEAD_LETTER_REASON_CODE] == "invalid_payload"
        assert dead.attributes[events.DEAD_LETTER_REASON]
        failure = repo.get_failure(dead.attributes[events.FAILURE_KEY])
        assert failure is not None and failure.dead_lettered and failure.attempts == 1
    reasons = " | ".join(d.attributes[events.DEAD_LETTER_REASON] for d in got)
    assert "customer" in reasons and "account id" in reasons
    assert "StripeEvent invalid: id:" in reasons
    # Nothing was written for any customer, and the next healthy event still applies.
    assert repo.list_customers() == []
    assert subscriber.handle(message(event(customer_id="cus_healthy"))).decision == "applied"


@pytest.mark.parametrize("key", ["__x__", "..", "x" * 2_000])
def test_row1_firestore_invalid_argument_is_permanent_on_the_emulator(
    world: tuple[str, CommonSettings, Subscriber], key: str
) -> None:
    # Past our own key check, straight to the emulator (it answers InvalidArgument for
    # each of these): the one mapping makes that Unstorable, never retried, instead of
    # an unexpected error the subscriber would have retried five times.
    project, _, _ = world
    ref = FirestoreAdapter(project)._client().collection("customers").document(key)
    with pytest.raises(Unstorable), google_call("firestore set record"):
        ref.set({"customer_id": key}, timeout=TIMEOUT)


def test_row6_an_event_from_2100_is_dead_lettered_and_reconcile_lowers_an_old_one(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, settings, subscriber = world
    repo = FirestoreRepository(project)
    assert subscriber.handle(message(event(START, customer_id="cus_future"))).decision == "applied"
    future = event(YEAR_2100, customer_id="cus_future", prices={TEAM: 1})

    assert subscriber.handle(message(future)).decision == "dead_lettered"

    [dead] = dead_letters(project, settings, 1)
    assert "ahead of our clock" in dead.attributes[events.DEAD_LETTER_REASON]
    record = repo.get_record("cus_future")
    assert record is not None and record.watermark is not None
    assert record.watermark.created == START

    # A record an implausible event reached before the bound existed (a subscriber
    # whose clock was that far ahead): reconcile, reading Stripe, lowers it.
    stuck_by = make_subscriber(project, settings, clock=lambda: YEAR_2100)
    legacy = event(YEAR_2100, customer_id="cus_legacy", prices={TEAM: 1})
    assert stuck_by.handle(message(legacy)).decision == "applied"
    now = int(time.time())
    server = StripeServer().start()
    try:
        truth = event(now, customer_id="cus_legacy", prices={TEAM: 1})["data"]["object"]
        server.state.subscriptions[truth["id"]] = truth
        outcome = reconciler(subscriber, settings, server.url, now).reconcile("cus_legacy")
    finally:
        server.stop()
    assert outcome.applied and "watermark_created" in outcome.changes
    fixed = repo.get_record("cus_legacy")
    assert fixed is not None and fixed.watermark is not None
    assert fixed.watermark.created == now and fixed.updated_at == now
    later = event(now + 1, customer_id="cus_legacy", status="past_due", prices={TEAM: 1})
    assert subscriber.handle(message(later)).decision == "applied"


def test_row7_a_handled_event_without_a_customer_id_is_dead_lettered_at_once(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, settings, subscriber = world
    inputs = []
    for customer in (42, None, "not-a-customer"):
        raw = event()
        raw["data"]["object"]["customer"] = customer
        inputs.append(raw)
    missing = event()
    del missing["data"]["object"]["customer"]
    inputs.append(missing)

    assert [subscriber.handle(message(raw)).decision for raw in inputs] == ["dead_lettered"] * 4

    got = dead_letters(project, settings, 4)
    assert all("customer" in d.attributes[events.DEAD_LETTER_REASON] for d in got)
    repo = FirestoreRepository(project)
    assert {d.attributes[events.FAILURE_KEY] for d in got} == {raw["id"] for raw in inputs}
    assert all(not repo.is_processed(raw["id"]) for raw in inputs)
    assert repo.list_customers() == []


def test_row8_a_second_customer_naming_a_linked_account_is_an_anomaly(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, _, subscriber = world
    first = event(START, customer_id="cus_first")
    first["data"]["object"]["metadata"] = {"account_id": "acct_shared"}
    second = event(START + 10, customer_id="cus_second", prices={TEAM: 1})
    second["data"]["object"]["metadata"] = {"account_id": "acct_shared"}

    assert subscriber.handle(message(first)).decision == "applied"
    assert subscriber.handle(message(second)).decision == "anomaly"

    link = FirestoreAccountStore(project).get("acct_shared")
    assert link is not None and link.customer_id == "cus_first"
    repo = FirestoreRepository(project)
    taken = repo.get_record("cus_second")
    assert taken is not None and taken.account_id is None and taken.status == "none"
    assert [a.code for a in taken.anomalies] == ["account_taken"]
    assert repo.with_open_anomalies() == ["cus_second"]
    published = entitlements(project)
    assert {r.customer_id for r in published} == {"cus_first"}
    assert all(json.loads(r.data)["account_id"] == "acct_shared" for r in published)


def test_row1_failure_key_of_a_long_event_id_is_found_again(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, settings, subscriber = world
    raw = event(customer_id="cus_a/b")
    raw["id"] = "evt_" + "b" * 251  # the longest valid id: too long for a failure key as is
    outcome = subscriber.handle(IncomingMessage(json.dumps(raw).encode(), message_id="m1"))
    assert outcome.decision == "dead_lettered"
    [dead] = dead_letters(project, settings, 1)
    key = dead.attributes[events.FAILURE_KEY]
    assert key == storable_key(raw["id"]) != raw["id"]
    failure = FirestoreRepository(project).get_failure(raw["id"])
    assert failure is not None and failure.event_id == key


def test_row9_absurd_seat_quantities_are_dead_lettered_never_applied(
    world: tuple[str, CommonSettings, Subscriber],
) -> None:
    project, settings, subscriber = world
    inputs = []
    for n, quantity in enumerate((-5, 10**12)):
        raw = event(customer_id=f"cus_seats{n}", prices={TEAM: 1, SEAT: 1})
        for item in raw["data"]["object"]["items"]["data"]:
            if item["price"]["lookup_key"] == SEAT:
                item["quantity"] = quantity
        inputs.append(raw)

    assert [subscriber.handle(message(raw)).decision for raw in inputs] == ["dead_lettered"] * 2

    got = dead_letters(project, settings, 2)
    assert all("quantity" in d.attributes[events.DEAD_LETTER_REASON] for d in got)
    assert FirestoreRepository(project).list_customers() == []
    assert entitlements(project) == []
