"""Issue 17, rows 1, 6, 7, 8 and 9: what the domain and the store accept (pure, on fakes).

Every input here can never succeed, so the subscriber must dead-letter it on the first
attempt with its reason and write nothing for the customer; the emulator suite
(tests/integration/test_hostile_input_e2e.py) drives the same inputs through Firestore.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from google.api_core import exceptions as gexc

from functions import stripe_events as events
from functions.adapters.google_errors import document_id, google_call
from functions.errors import InvalidPayload, TransientError, Unstorable
from functions.services.admission import admit
from functions.services.apply import Applier
from functions.services.reconcile import ReconcileService
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Outcome, Subscriber
from infra.local.scenarios import SEAT, START, TEAM, subscription_event
from schemas.documents import BillingRecord
from schemas.ids import customer_id_problem, firestore_id_problem, storable_key
from schemas.stripe import StripeEvent, Subscription
from statemachine import decide, reconcile
from statemachine.decision import Policy
from statemachine.ordering import MAX_CLOCK_SKEW_SECONDS, implausible_created
from tests.support.fake_accounts import FakeAccountStore
from tests.support.fake_audit import FakeAuditLog
from tests.support.fake_publisher import FakePublisher
from tests.support.fake_repository import FakeRepository
from tests.support.fake_stripe_gateway import FakeStripeGateway

DLQ = "dead-letters"
NOW = START + 3_600  # the subscriber's clock in these tests
YEAR_2100 = 4_102_444_800
UPDATED = "customer.subscription.updated"
POLICY = Policy()


def make(repo: FakeRepository, pub: FakePublisher) -> Subscriber:
    return Subscriber(
        Applier(repo, OutboxRelay(repo, pub, "ents"), marker_ttl_days=35),
        pub,
        project="p",
        dead_letter_topic=DLQ,
        policy=POLICY,
        clock=lambda: NOW,
    )


def sub_event(created: int = START, **kw: Any) -> dict[str, Any]:
    return subscription_event(UPDATED, created, **kw)


def deliver(event: dict[str, Any]) -> tuple[Outcome, FakeRepository, FakePublisher]:
    repo, pub = FakeRepository(), FakePublisher()
    outcome = make(repo, pub).handle(
        IncomingMessage(data=json.dumps(event).encode(), message_id="m1")
    )
    return outcome, repo, pub


def assert_dead_lettered_at_once(
    outcome: Outcome, repo: FakeRepository, pub: FakePublisher, reason_part: str
) -> str:
    """Dead-lettered on this, the first, attempt, with a reason; nothing applied."""
    assert outcome.decision == "dead_lettered"
    [dead] = pub.on(DLQ)
    attributes = dead.attributes
    assert attributes[events.DEAD_LETTER_REASON_CODE] == "invalid_payload"
    reason = attributes[events.DEAD_LETTER_REASON]
    assert reason_part in reason
    [failure] = repo.failures.values()
    assert failure.dead_lettered and failure.attempts == 1 and reason_part in failure.reason
    assert repo.records == {} and repo.markers == set() and repo.accounts == {}
    return reason


# -- row 1: ids Firestore cannot store ----------------------------------------------------

UNSTORABLE_CUSTOMERS = ["cus_a/b", "..", "__x__", "cus_" + "a" * 10_000, "cus_é", ""]


@pytest.mark.parametrize("value", ["a/b", ".", "..", "__x__", "x" * 1501, "é" * 751, ""])
def test_row1_firestore_key_rules(value: str) -> None:
    assert firestore_id_problem(value) is not None
    with pytest.raises(Unstorable):
        document_id(value)


@pytest.mark.parametrize("value", ["cus_1", "_x_", "__x", "x" * 1500, "é" * 750, "a.b"])
def test_row1_firestore_accepts_the_rest(value: str) -> None:
    assert firestore_id_problem(value) is None and document_id(value) == value


@pytest.mark.parametrize("customer", UNSTORABLE_CUSTOMERS)
def test_row1_unstorable_customer_id_is_dead_lettered_at_once(customer: str) -> None:
    event = sub_event(customer_id=customer)
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "customer")


@pytest.mark.parametrize("account", ["a/b", "..", "__x__", "x" * 10_000, "-lead"])
def test_row1_unstorable_account_id_in_metadata_is_dead_lettered_at_once(account: str) -> None:
    event = sub_event()
    event["data"]["object"]["metadata"] = {"account_id": account}
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "account id")


@pytest.mark.parametrize("field", ["client_reference_id", "metadata"])
def test_row1_a_checkout_naming_an_unstorable_account_is_dead_lettered_at_once(
    field: str,
) -> None:
    session: dict[str, Any] = {"id": "cs_1", "object": "checkout.session", "customer": "cus_1"}
    session[field] = {"account_id": "acct/evil"} if field == "metadata" else "acct/evil"
    event = {
        "id": "evt_cs",
        "object": "event",
        "type": "checkout.session.completed",
        "created": START,
        "livemode": False,
        "data": {"object": session},
    }
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "account id")


def test_row1_unstorable_subscription_id_is_dead_lettered_at_once() -> None:
    outcome, repo, pub = deliver(sub_event(sub_id="sub_a/b"))
    assert_dead_lettered_at_once(outcome, repo, pub, "Subscription invalid: id: String should")


def test_row1_a_10kb_event_id_still_gets_a_failure_record() -> None:
    event = sub_event()
    event["id"] = "evt_" + "a" * 10_000
    outcome, repo, pub = deliver(event)
    assert outcome.decision == "dead_lettered"
    [failure] = repo.failures.values()
    [dead] = pub.on(DLQ)
    attributes = dead.attributes
    # The key is what billing-ops finds the failure by, and fits a Pub/Sub attribute.
    key = attributes[events.FAILURE_KEY]
    assert len(key.encode()) <= 200 and firestore_id_problem(key) is None
    assert repo.get_failure(key) == failure and "StripeEvent invalid: id:" in failure.reason


def test_row1_storable_key_keeps_short_ids_and_hashes_the_rest() -> None:
    assert storable_key("evt_1") == "evt_1"
    long_a, long_b = "evt_" + "a" * 10_000, "evt_" + "a" * 9_999 + "b"
    assert storable_key(long_a) == storable_key(long_a) != storable_key(long_b)
    for raw in (long_a, "a/b", "..", "__x__", "msg-" + "é" * 400):
        key = storable_key(raw)
        assert firestore_id_problem(key) is None and len(key.encode()) <= 200


def test_row1_firestore_invalid_argument_is_permanent_not_transient() -> None:
    with pytest.raises(Unstorable), google_call("firestore transaction"):
        raise gexc.InvalidArgument("Document name too long")
    # The one InvalidArgument a retry fixes: a transaction that outlived its lease.
    expired = "The referenced transaction has expired or is no longer valid."
    with pytest.raises(TransientError), google_call("firestore transaction"):
        raise gexc.InvalidArgument(expired)
    with pytest.raises(Unstorable), google_call("firestore transaction"):
        raise gexc.InvalidArgument("Transaction too big. Decrease transaction size.")


def test_row1_account_store_refuses_unstorable_ids_and_writes_nothing() -> None:
    store = FakeAccountStore()
    for bad in ("a/b", "..", "__x__"):
        with pytest.raises(Unstorable):
            store.link(bad, "cus_1", START)
    assert store.links == {}


# -- row 6: `created` far in the future ---------------------------------------------------


def test_row6_created_is_bounded_by_the_present_plus_the_skew() -> None:
    assert implausible_created(NOW + MAX_CLOCK_SKEW_SECONDS, NOW) is None
    assert implausible_created(NOW - 30 * 86_400, NOW) is None  # Stripe retries for days
    reason = implausible_created(NOW + MAX_CLOCK_SKEW_SECONDS + 1, NOW)
    assert reason is not None and "ahead of our clock" in reason


def test_row6_an_event_from_2100_is_dead_lettered_and_never_becomes_the_watermark() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    subscriber = make(repo, pub)
    first = subscriber.handle(IncomingMessage(json.dumps(sub_event(START)).encode()))
    assert first.decision == "applied"
    future = sub_event(YEAR_2100, status="canceled", prices={TEAM: 1})
    outcome = subscriber.handle(IncomingMessage(json.dumps(future).encode(), message_id="m2"))

    assert outcome.decision == "dead_lettered"
    [dead] = pub.on(DLQ)
    assert "ahead of our clock" in dead.attributes[events.DEAD_LETTER_REASON]
    record = repo.records["cus_one"]
    assert record.watermark is not None and record.watermark.created == START
    # The next real update is not "stale".
    later = sub_event(START + 60, status="past_due")
    assert subscriber.handle(IncomingMessage(json.dumps(later).encode())).decision == "applied"


def test_row6_reconcile_lowers_a_watermark_already_in_the_future() -> None:
    # A record an implausible event reached before the bound existed (the domain itself
    # takes time from the event; the bound is the subscriber's, with its clock).
    rec = decide(
        BillingRecord(customer_id="cus_one"),
        StripeEvent.model_validate(sub_event(YEAR_2100, prices={TEAM: 1})),
        POLICY,
    ).record
    stuck = decide(rec, StripeEvent.model_validate(sub_event(NOW, status="past_due")), POLICY)
    assert stuck.kind == "stale"  # what row 6 reported

    truth = Subscription.model_validate(sub_event(NOW)["data"]["object"])
    fixed = reconcile(rec, truth, NOW, POLICY)

    assert fixed.kind == "applied"
    assert fixed.record.watermark is not None and fixed.record.watermark.created == NOW
    assert fixed.record.updated_at == NOW
    after = decide(
        fixed.record, StripeEvent.model_validate(sub_event(NOW + 60, status="past_due")), POLICY
    )
    assert after.kind == "applied" and after.record.status == "past_due"


def test_row6_reconcile_lowers_the_future_even_when_stripe_has_no_subscription() -> None:
    rec = decide(
        BillingRecord(customer_id="cus_one"),
        StripeEvent.model_validate(sub_event(YEAR_2100, status="canceled")),
        POLICY,
    ).record
    fixed = reconcile(rec, None, NOW, POLICY)
    assert fixed.kind == "applied"
    assert fixed.record.watermark is not None and fixed.record.watermark.created == NOW
    assert fixed.record.updated_at == NOW


# -- row 7: a handled event without a readable customer -----------------------------------


@pytest.mark.parametrize("customer", [42, None, "not-a-customer", {"id": 42}, ["cus_1"]])
def test_row7_a_subscription_event_without_a_customer_id_is_dead_lettered(customer: Any) -> None:
    event = sub_event()
    event["data"]["object"]["customer"] = customer
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "customer")


def test_row7_a_missing_customer_is_dead_lettered_and_named_as_missing() -> None:
    event = sub_event()
    del event["data"]["object"]["customer"]
    outcome, repo, pub = deliver(event)
    reason = assert_dead_lettered_at_once(outcome, repo, pub, "customer")
    assert "is missing" in reason


def test_row7_an_invoice_event_without_a_customer_is_dead_lettered() -> None:
    event = {
        "id": "evt_inv",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": START,
        "livemode": False,
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": 42}},
    }
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "customer")


def test_row7_events_we_do_not_handle_and_customerless_sessions_stay_ignored() -> None:
    session = StripeEvent.model_validate(
        {
            "id": "evt_cs",
            "object": "event",
            "type": "checkout.session.completed",
            "created": START,
            "livemode": False,
            "data": {"object": {"id": "cs_1", "object": "checkout.session", "customer": None}},
        }
    )
    assert admit(session, NOW) is None
    product = session.model_copy(update={"type": "product.created"})
    assert admit(product, NOW) is None
    bad = {"object": "checkout.session", "customer": "x/y"}
    named = session.model_copy(update={"data": session.data.model_copy(update={"object": bad})})
    with pytest.raises(InvalidPayload, match="customer"):
        admit(named, NOW)


# -- row 8: two customers naming one account ----------------------------------------------


def test_row8_the_second_customer_naming_a_linked_account_is_an_anomaly() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    subscriber = make(repo, pub)
    first = sub_event(START, customer_id="cus_first")
    first["data"]["object"]["metadata"] = {"account_id": "acct_shared"}
    second = sub_event(START + 10, customer_id="cus_second", prices={TEAM: 1})
    second["id"] = "evt_second"
    second["data"]["object"]["metadata"] = {"account_id": "acct_shared"}

    assert subscriber.handle(IncomingMessage(json.dumps(first).encode())).decision == "applied"
    outcome = subscriber.handle(IncomingMessage(json.dumps(second).encode()))

    assert outcome.decision == "anomaly"
    assert repo.customer_for_account("acct_shared") == "cus_first"
    taken = repo.records["cus_second"]
    assert taken.account_id is None and taken.status == "none" and taken.version == 0
    [anomaly] = taken.anomalies
    assert anomaly.code == "account_taken" and anomaly.event_id == "evt_second"
    assert "cus_first" in anomaly.detail and taken.anomaly_open_since == START + 10
    # Portal and plan changes resolve the account through the link: the first customer.
    link = FakeAccountStore(links=repo.accounts).get("acct_shared")
    assert link is not None and link.customer_id == "cus_first"
    # No entitlement message ever names the account for the second customer.
    assert [m for m in pub.messages if m.attributes.get("customer_id") == "cus_second"] == []


def test_row8_the_anomaly_job_keeps_reporting_a_taken_account_and_never_hands_it_over() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    subscriber = make(repo, pub)
    for customer, sub_id in (("cus_first", "sub_first"), ("cus_second", "sub_second")):
        raw = sub_event(START, customer_id=customer, sub_id=sub_id)
        raw["id"] = f"evt_{customer}"
        raw["data"]["object"]["metadata"] = {"account_id": "acct_shared"}
        subscriber.handle(IncomingMessage(json.dumps(raw).encode()))
    gateway = FakeStripeGateway()
    truth = sub_event(START, customer_id="cus_second", sub_id="sub_second")["data"]["object"]
    truth["metadata"] = {"account_id": "acct_shared"}
    gateway.subscriptions["sub_second"] = truth
    service = ReconcileService(
        subscriber.applier,
        gateway,
        POLICY,
        audit=FakeAuditLog(),
        publisher=pub,
        events_topic="events",
        clock=lambda: NOW,
    )

    # Stripe's truth names the account too: reconcile cannot resolve it, so each run
    # reports it (the line that pages on-call), the duplicate second run included.
    runs = [service.reconcile_anomalies(), service.reconcile_anomalies()]

    assert [(r["checked"], r["unresolved"]) for r in runs] == [(1, 1), (1, 1)]
    assert repo.customer_for_account("acct_shared") == "cus_first"
    record = repo.records["cus_second"]
    assert record.account_id is None and {a.code for a in record.anomalies} == {"account_taken"}


def test_row8_the_same_customer_naming_its_own_account_again_is_no_anomaly() -> None:
    repo, pub = FakeRepository(), FakePublisher()
    store = FakeAccountStore(links=repo.accounts)
    store.link("acct_own", "cus_one", START - 60)  # checkout linked it first
    event = sub_event(START)
    event["data"]["object"]["metadata"] = {"account_id": "acct_own"}

    outcome = make(repo, pub).handle(IncomingMessage(json.dumps(event).encode()))

    assert outcome.decision == "applied"
    assert repo.records["cus_one"].account_id == "acct_own"
    assert repo.accounts["acct_own"].linked_at == START - 60  # the first link, unchanged


# -- row 9: absurd seat quantities --------------------------------------------------------


@pytest.mark.parametrize("quantity", [-5, 10**12, 10_001])
def test_row9_a_quantity_outside_the_bound_is_dead_lettered_never_applied(quantity: int) -> None:
    event = sub_event(prices={TEAM: 1, SEAT: 1})
    for item in event["data"]["object"]["items"]["data"]:
        if item["price"]["lookup_key"] == SEAT:
            item["quantity"] = quantity
    with pytest.raises(pydantic.ValidationError, match="quantity"):
        Subscription.model_validate(event["data"]["object"])
    outcome, repo, pub = deliver(event)
    assert_dead_lettered_at_once(outcome, repo, pub, "quantity")


@pytest.mark.parametrize("quantity", [0, 1, 10_000])
def test_row9_quantities_inside_the_bound_are_applied(quantity: int) -> None:
    event = sub_event(prices={TEAM: 1, SEAT: quantity})
    outcome, repo, _ = deliver(event)
    assert outcome.decision == "applied"
    record = repo.records["cus_one"]
    assert record.entitlements is not None and record.entitlements.limits.seats == 10 + quantity


def test_row1_customer_id_rule_follows_stripe_shape() -> None:
    assert customer_id_problem("cus_NffrFeUfNV2Hib") is None
    assert customer_id_problem("cus_test_1") is None
    assert customer_id_problem("cus_" + "a" * 251) is None  # 255 characters
    assert customer_id_problem("cus_" + "a" * 252) is not None
    assert customer_id_problem("sub_1") is not None
