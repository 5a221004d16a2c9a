"""billing-ops against the emulators and the local Stripe server, through the CLI itself.

The real Subscriber (FirestoreRepository + PubSubPublisher) processes `stripe-events` from
a pull subscription with the production dead-letter policy (5 attempts). The only stand-in
is the Firestore *outage* of the first test: a repository whose `apply` fails the way the
adapter does when Firestore is unavailable (TransientError), so Pub/Sub itself dead-letters
the events after five deliveries, exactly as in production.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from functions import composition
from functions.adapters.firestore_audit import AUDIT
from functions.adapters.firestore_repository import FirestoreRepository
from functions.config import (
    DEFAULT_DEAD_LETTER_SUBSCRIPTION,
    DEFAULT_DEAD_LETTER_TOPIC,
    DEFAULT_ENTITLEMENTS_TOPIC,
    DEFAULT_STRIPE_EVENTS_SUBSCRIPTION,
    DEFAULT_STRIPE_EVENTS_TOPIC,
    reset_settings_cache,
)
from functions.entrypoints.cli.main import cli
from functions.errors import TransientError
from functions.ports import ApplyResult, DecideFn, Operation
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from functions.stripe_events import parse_envelope, trace_context
from infra.local import scenarios
from infra.local.emulators import Emulators
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent
from statemachine import Decision, decide
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator

OBSERVER = "entitlements-observer"
DAY = 86_400


# -- the world of one test -------------------------------------------------------------


class FirestoreDown:
    """The repository while Firestore is unavailable: every transaction fails transiently."""

    def __init__(self, real: FirestoreRepository) -> None:
        self._real = real

    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        raise TransientError("firestore transaction failed: ServiceUnavailable: 503")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class World:
    project: str
    stripe: StripeServer
    publisher: PublisherClient
    subscriber: SubscriberClient
    runner: CliRunner = field(default_factory=CliRunner)

    def topic(self, name: str) -> str:
        return str(self.publisher.topic_path(self.project, name))

    def sub(self, name: str) -> str:
        return str(self.subscriber.subscription_path(self.project, name))

    @property
    def repo(self) -> FirestoreRepository:
        return composition.repository()

    # Stripe -> webhook -> stripe-events, as the webhook publishes it.
    def publish_event(self, raw: dict[str, Any], topic: str = DEFAULT_STRIPE_EVENTS_TOPIC) -> None:
        data = json.dumps(raw).encode()
        attributes = parse_envelope(data).attributes(*trace_context({}))
        self.publisher.publish(self.topic(topic), data, **attributes).result(timeout=30)

    def deliver(self, handler: Subscriber | None = None, rounds: int = 1) -> int:
        """Pull stripe-events and run the subscriber; nack on failure, like the push does."""
        handler = handler or composition.subscriber()
        handled = 0
        for _ in range(rounds):
            for _ in range(20):
                response = self.subscriber.pull(
                    request={
                        "subscription": self.sub(DEFAULT_STRIPE_EVENTS_SUBSCRIPTION),
                        "max_messages": 50,
                        "return_immediately": True,
                    }
                )
                if response.received_messages:
                    break
                time.sleep(0.1)
            for item in response.received_messages:
                msg = item.message
                incoming = IncomingMessage(
                    data=bytes(msg.data),
                    attributes=dict(msg.attributes),
                    message_id=msg.message_id,
                    delivery_attempt=item.delivery_attempt or None,
                )
                try:
                    handler.handle(incoming)
                except TransientError:
                    self.subscriber.modify_ack_deadline(
                        request={
                            "subscription": self.sub(DEFAULT_STRIPE_EVENTS_SUBSCRIPTION),
                            "ack_ids": [item.ack_id],
                            "ack_deadline_seconds": 0,
                        }
                    )
                    continue
                self.subscriber.acknowledge(
                    request={
                        "subscription": self.sub(DEFAULT_STRIPE_EVENTS_SUBSCRIPTION),
                        "ack_ids": [item.ack_id],
                    }
                )
                handled += 1
        return handled

    def entitlement_messages(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        for _ in range(3):
            response = self.subscriber.pull(
                request={
                    "subscription": self.sub(OBSERVER),
                    "max_messages": 100,
                    "return_immediately": True,
                }
            )
            if not response.received_messages:
                if seen:
                    break
                time.sleep(0.1)
                continue
            seen.extend(json.loads(r.message.data) for r in response.received_messages)
            self.subscriber.acknowledge(
                request={
                    "subscription": self.sub(OBSERVER),
                    "ack_ids": [r.ack_id for r in response.received_messages],
                }
            )
        return seen

    def run(self, *args: str, input: str | None = None, code: int = 0) -> Result:
        result = self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        return json.loads(result.stdout)

    def audit(self, action: str) -> list[dict[str, Any]]:
        db = firestore.Client(project=self.project)
        docs = [d.to_dict() or {} for d in db.collection(AUDIT).stream()]
        return [d for d in docs if d.get("action") == action]


@pytest.fixture
def world(
    emulators: Emulators,
    stripe_server: StripeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    project = f"demo-ops-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_local")
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
    monkeypatch.setenv("BILLING_OPS_ACTOR", "oncall@example.com")
    reset_settings_cache()
    composition.reset()
    pub, sub = PublisherClient(), SubscriberClient()
    w = World(project, stripe_server, pub, sub)
    for topic in (
        DEFAULT_STRIPE_EVENTS_TOPIC,
        DEFAULT_DEAD_LETTER_TOPIC,
        DEFAULT_ENTITLEMENTS_TOPIC,
    ):
        pub.create_topic(name=w.topic(topic))
    # The production topology (infra/terraform/pubsub.tf): 5 attempts, then dead-letter.
    sub.create_subscription(
        request={
            "name": w.sub(DEFAULT_STRIPE_EVENTS_SUBSCRIPTION),
            "topic": w.topic(DEFAULT_STRIPE_EVENTS_TOPIC),
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {
                "dead_letter_topic": w.topic(DEFAULT_DEAD_LETTER_TOPIC),
                "max_delivery_attempts": 5,
            },
        }
    )
    sub.create_subscription(
        request={
            "name": w.sub(DEFAULT_DEAD_LETTER_SUBSCRIPTION),
            "topic": w.topic(DEFAULT_DEAD_LETTER_TOPIC),
            "ack_deadline_seconds": 60,
        }
    )
    sub.create_subscription(
        request={"name": w.sub(OBSERVER), "topic": w.topic(DEFAULT_ENTITLEMENTS_TOPIC)}
    )
    yield w
    composition.reset()
    reset_settings_cache()


def recent(name: str, customer_id: str, days_ago: int = 2) -> scenarios.Scenario:
    """A scenario that happened recently (the Events API only covers 30 days)."""
    return scenarios.build(
        name, customer_id, f"acct_{customer_id[4:]}", start=int(time.time()) - days_ago * DAY
    )


# -- dead letters ------------------------------------------------------------------------


def test_dead_lettered_events_are_replayed_once_and_restore_the_customer(world: World) -> None:
    customer = f"cus_dlq{uuid.uuid4().hex[:8]}"
    story = recent("checkout_active", customer)
    for raw in story.events:
        world.publish_event(raw)

    # Firestore is down: every delivery fails; after 5 Pub/Sub forwards to the dead-letter topic.
    repo_, pub = FirestoreDown(world.repo), composition.publisher()
    outage = Subscriber(
        Applier(repo_, OutboxRelay(repo_, pub, DEFAULT_ENTITLEMENTS_TOPIC), marker_ttl_days=35),
        pub,
        project=world.project,
        dead_letter_topic=DEFAULT_DEAD_LETTER_TOPIC,
        policy=composition.policy(),
    )
    assert world.deliver(outage, rounds=6) == 0
    listed = world.json("dlq", "list")
    assert sorted(r["event_id"] for r in listed) == sorted(e["id"] for e in story.events)
    assert {r["customer"] for r in listed} == {customer}
    assert {r["attempts"] for r in listed} == {5}
    assert {r["reason_code"] for r in listed} == {"max_attempts"}
    assert world.repo.get_record(customer) is None
    human = world.run("dlq", "list").stdout
    assert customer in human and "max_attempts" in human
    shown = world.json("dlq", "show", story.events[0]["id"])
    assert shown["in_queue"] == 1
    assert shown["messages"][0]["envelope"]["type"] == story.events[0]["type"]
    assert shown["last_error"]["reason_code"] == "transient"
    # Reading did not consume anything.
    assert len(world.json("dlq", "list")) == len(story.events)

    # Dry run: nothing leaves the queue.
    dry = world.json("dlq", "replay", "--customer", customer, "--dry-run")
    assert sorted(dry["matched"]) == sorted(e["id"] for e in story.events)
    assert dry["republished"] == {}
    assert len(world.json("dlq", "list")) == len(story.events)

    # The cause is fixed (Firestore is back): replay, and the normal subscriber applies them.
    replayed = world.json("dlq", "replay", "--customer", customer, "--reason", "INC-1 over")
    assert sorted(replayed["republished"]) == sorted(e["id"] for e in story.events)
    assert world.json("dlq", "list") == []
    world.deliver(rounds=3)
    record = world.repo.get_record(customer)
    assert record is not None
    assert record.status == story.expected.status
    assert record.access == story.expected.access
    assert record.entitlements is not None
    assert record.entitlements.plan == story.expected.plan
    published = world.entitlement_messages()
    assert published[-1]["version"] == record.version
    assert published[-1]["access"] == story.expected.access.value
    history = world.json("account", "history", customer)
    assert {h["source"] for h in history["transitions"]} == {"replay"}
    (audit,) = world.audit("dlq.replay")
    assert audit["actor"] == "oncall@example.com" and audit["reason"] == "INC-1 over"

    # Replaying again: nothing left to replay...
    again = world.json("dlq", "replay", "--customer", customer)
    assert again["matched"] == []
    # ...and if the same events are dead-lettered again and replayed, nothing changes.
    for raw in story.events:
        world.publish_event(raw, topic=DEFAULT_DEAD_LETTER_TOPIC)
    second = world.json("dlq", "replay", "--all", "--yes")
    assert len(second["republished"]) == len(story.events)
    world.deliver(rounds=3)
    after = world.repo.get_record(customer)
    assert after is not None
    assert after.version == record.version
    assert after.model_dump() == record.model_dump()
    assert world.entitlement_messages() == []
    assert len(world.repo.history(customer)) == len(history["transitions"])


def test_undecodable_event_is_shown_and_purge_needs_confirmation(world: World) -> None:
    world.publisher.publish(
        world.topic(DEFAULT_STRIPE_EVENTS_TOPIC),
        b'{"id": "evt_broken1", "object": "event", "type": "invoice.paid"',
        event_id="evt_broken1",
        event_type="invoice.paid",
        customer_id="cus_broken",
    ).result(timeout=30)
    world.deliver()  # the real subscriber dead-letters it itself (permanent failure)
    (row,) = world.json("dlq", "list")
    assert row["event_id"] == "evt_broken1"
    assert row["reason_code"] == "invalid_payload"
    shown = world.json("dlq", "show", "evt_broken1")
    assert shown["last_error"]["reason_code"] == "invalid_payload"
    assert shown["messages"][0]["envelope"]["parseable"] is False

    # Purge asks first; "no" changes nothing and exits non-zero.
    refused = world.run("dlq", "purge", "evt_broken1", "--reason", "garbage", input="n\n", code=1)
    assert "Permanently delete 1" in refused.output
    assert len(world.json("dlq", "list")) == 1
    world.run("dlq", "purge", "evt_broken1", "--reason", "garbage", "--dry-run")
    assert len(world.json("dlq", "list")) == 1
    assert world.audit("dlq.purge") == []

    purged = world.runner.invoke(
        cli, ["dlq", "purge", "evt_broken1", "--reason", "garbage", "--json"], input="y\n"
    )
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout) == {
        "dry_run": False,
        "messages": 1,
        "purged": ["evt_broken1"],
    }
    assert world.json("dlq", "list") == []
    (audit,) = world.audit("dlq.purge")
    assert audit["details"]["event_ids"] == ["evt_broken1"]
    assert audit["reason"] == "garbage" and audit["actor"] == "oncall@example.com"


def test_replay_without_a_selector_is_refused(world: World) -> None:
    result = world.run("dlq", "replay", code=2)
    assert "say what to replay" in result.output


# -- accounts and overrides ----------------------------------------------------------------


def test_override_is_published_audited_visible_and_removable(world: World) -> None:
    customer = f"cus_ovr{uuid.uuid4().hex[:8]}"
    story = recent("checkout_active", customer)
    for raw in story.events:
        world.publish_event(raw)
    world.deliver(rounds=3)
    before = world.repo.get_record(customer)
    assert before is not None and before.access.value == "full"
    world.entitlement_messages()

    shown = world.json("account", "show", story.account_id)  # by our account id
    assert shown["record"]["customer_id"] == customer
    assert shown["record"]["override"] is None

    dry = world.json(
        "account", "override", "set", customer, "--access", "restricted",
        "--reason", "TICKET-9 chargeback", "--dry-run",
    )  # fmt: skip
    assert dry["changes"]["access"] == {"before": "full", "after": "restricted"}
    assert world.repo.get_record(customer) == before
    assert world.audit("override.set") == []

    refused = world.run(
        "account", "override", "set", customer, "--access", "restricted",
        "--reason", "TICKET-9 chargeback", input="n\n", code=1,
    )  # fmt: skip
    assert "Force access=restricted" in refused.output
    assert world.repo.get_record(customer) == before

    world.run(
        "account", "override", "set", customer, "--access", "restricted",
        "--reason", "TICKET-9 chargeback", "--expires-in", "2d", input="y\n",
    )  # fmt: skip
    record = world.repo.get_record(customer)
    assert record is not None and record.override is not None
    assert record.access.value == "restricted"
    assert record.override.actor == "oncall@example.com"
    assert abs(record.override.expires_at - (time.time() + 2 * DAY)) < 60
    (message,) = world.entitlement_messages()
    assert message["version"] == before.version + 1
    assert message["access"] == "restricted" and message["override_active"] is True

    shown = world.json("account", "show", customer)
    assert shown["record"]["override"]["reason"] == "TICKET-9 chargeback"
    assert shown["record"]["override_active"] is True
    assert "override (ACTIVE): access=restricted" in world.run("account", "show", customer).stdout
    history = world.json("account", "history", customer)
    assert history["transitions"][0]["source"] == "override"
    assert [a["action"] for a in history["operator_actions"]] == ["override.set"]

    world.run("account", "override", "clear", customer, "--reason", "resolved", "--yes")
    cleared = world.repo.get_record(customer)
    assert cleared is not None and cleared.override is None
    assert cleared.access.value == "full"
    (message,) = world.entitlement_messages()
    assert message["access"] == "full" and message["override_active"] is False
    actions = world.json("account", "history", customer)["operator_actions"]
    assert [a["action"] for a in actions] == ["override.clear", "override.set"]


def test_account_show_unknown_customer_fails(world: World) -> None:
    result = world.run("account", "show", "acct_nobody", code=1)
    assert "no billing record" in result.output


# -- reconcile and catch-up -----------------------------------------------------------------


def _seed_stripe(world: World, story: scenarios.Scenario) -> None:
    assert story.final_subscription is not None
    world.stripe.seed_customer(story.customer_id)
    world.stripe.state.subscriptions[story.final_subscription["id"]] = story.final_subscription


def test_reconcile_corrects_a_missed_webhook_and_leaves_a_correct_customer_alone(
    world: World,
) -> None:
    tag = uuid.uuid4().hex[:8]
    good = recent("checkout_active", f"cus_good{tag}")
    missed = recent("checkout_active", f"cus_miss{tag}")
    for raw in good.events:
        world.publish_event(raw)
    # Only the first event of the second customer ever arrived.
    world.publish_event(missed.events[0])
    world.deliver(rounds=3)
    _seed_stripe(world, good)
    _seed_stripe(world, missed)
    world.entitlement_messages()
    good_before = world.repo.get_record(good.customer_id)
    stale = world.repo.get_record(missed.customer_id)
    assert good_before is not None and stale is not None
    assert stale.status != missed.expected.status
    good_history = len(world.repo.history(good.customer_id))

    dry = world.json("reconcile", "run", missed.customer_id, "--dry-run")
    (planned,) = dry["results"]
    assert planned["changes"]["status"] == {
        "firestore": stale.status,
        "stripe": missed.expected.status,
    }
    assert planned["applied"] is False
    assert world.repo.get_record(missed.customer_id) == stale

    done = world.json("reconcile", "run", good.customer_id, missed.customer_id)
    by_customer = {r["customer_id"]: r for r in done["results"]}
    assert by_customer[good.customer_id]["decision"] == "unchanged"
    assert by_customer[good.customer_id]["applied"] is False
    assert by_customer[missed.customer_id]["applied"] is True
    fixed = world.repo.get_record(missed.customer_id)
    assert fixed is not None
    assert fixed.status == missed.expected.status
    assert fixed.access == missed.expected.access
    assert fixed.entitlements is not None and fixed.entitlements.plan == missed.expected.plan
    assert world.repo.history(missed.customer_id)[0].source == "reconcile"
    operator = world.json("account", "history", missed.customer_id)["operator_actions"]
    assert [(a["action"], a["actor"]) for a in operator] == [("reconcile", "oncall@example.com")]
    assert world.json("account", "history", good.customer_id)["operator_actions"] == []
    (message,) = world.entitlement_messages()
    assert message["customer_id"] == missed.customer_id
    assert message["version"] == fixed.version
    # The correct customer was not written at all.
    assert world.repo.get_record(good.customer_id) == good_before
    assert len(world.repo.history(good.customer_id)) == good_history
    # Stripe was read through its API, paginated by customer.
    reads = world.stripe.requests_to("GET", "/v1/subscriptions")
    assert {r.params.get("customer") for r in reads} >= {good.customer_id, missed.customer_id}

    # A customer none of whose webhooks ever arrived: reconcile builds the record from Stripe.
    never = recent("checkout_active", f"cus_never{tag}")
    _seed_stripe(world, never)
    (created,) = world.json("reconcile", "run", never.customer_id)["results"]
    assert created["applied"] is True
    built = world.repo.get_record(never.customer_id)
    assert built is not None and built.status == never.expected.status
    assert built.access == never.expected.access
    world.entitlement_messages()

    # Running it again finds everyone in sync.
    again = world.json("reconcile", "run", "--all", "--yes")
    assert {r["decision"] for r in again["results"]} == {"unchanged"}
    assert world.entitlement_messages() == []


def test_catch_up_replays_undelivered_events_through_the_pipeline(world: World) -> None:
    customer = f"cus_catch{uuid.uuid4().hex[:8]}"
    story = recent("checkout_active", customer, days_ago=3)
    first, *missed = story.events
    world.publish_event(first)
    world.deliver()
    world.stripe.seed_event(first, delivered=False)  # Stripe lost track; we have it
    for raw in missed:
        world.stripe.seed_event(raw, delivered=False)

    dry = world.json("reconcile", "catch-up", "--since", "7d", "--dry-run")
    assert dry["found"] == [e["id"] for e in story.events]
    assert dry["already_processed"] == [first["id"]]
    assert dry["published"] == {}

    done = world.json("reconcile", "catch-up", "--since", "7d")
    assert sorted(done["published"]) == sorted(e["id"] for e in missed)
    world.deliver(rounds=3)
    record = world.repo.get_record(customer)
    assert record is not None
    assert record.status == story.expected.status
    assert record.access == story.expected.access
    assert world.entitlement_messages()[-1]["version"] == record.version


def _decide(record: BillingRecord, event: StripeEvent) -> Decision:
    return decide(record, event, composition.policy())


def test_relay_sweep_publishes_stuck_entries(world: World) -> None:
    customer = f"cus_sweep{uuid.uuid4().hex[:8]}"
    story = recent("checkout_active", customer)
    repo = world.repo
    # Committed by the domain but never relayed (the process died before publishing).
    for raw in story.events:
        event = StripeEvent.model_validate(raw)
        repo.apply(
            Operation(event.id, event.type, customer, event.created),
            partial(_decide, event=event),
            marker_ttl_days=35,
        )
    pending = repo.pending_outbox(customer)
    assert pending
    dry = world.json("relay", "sweep", "--older-than", "0s", "--dry-run")
    assert {r["customer"] for r in dry["stale"]} == {customer}
    assert repo.pending_outbox(customer) == pending
    done = world.json("relay", "sweep", "--older-than", "0s")
    assert done == {"customers": 1, "published": len(pending), "failed": {}}
    assert repo.pending_outbox(customer) == []
    versions = [m["version"] for m in world.entitlement_messages()]
    assert sorted(versions) == [p.version for p in pending]


def test_nightly_job_catches_up_and_reconciles(world: World) -> None:
    tag = uuid.uuid4().hex[:8]
    good = recent("checkout_active", f"cus_njgood{tag}")
    missed = recent("checkout_active", f"cus_njmiss{tag}")
    for raw in good.events:
        world.publish_event(raw)
    world.publish_event(missed.events[0])
    world.deliver(rounds=3)
    _seed_stripe(world, good)
    _seed_stripe(world, missed)
    lost = recent("checkout_active", f"cus_njlost{tag}", days_ago=1)
    for raw in lost.events:  # never delivered, still listed by Stripe
        world.stripe.seed_event(raw, delivered=False)

    summary = composition.reconciler().reconcile_all()
    assert summary["caught_up"] == len(lost.events)
    assert summary["checked"] == 2  # the lost customer has no record until the pipeline runs
    assert summary["corrected"] == 1 and summary["failed"] == 0
    fixed = world.repo.get_record(missed.customer_id)
    assert fixed is not None and fixed.status == missed.expected.status
    world.deliver(rounds=3)
    caught = world.repo.get_record(lost.customer_id)
    assert caught is not None and caught.status == lost.expected.status


def test_reconcile_anomalies_clears_what_stripe_resolves(world: World) -> None:
    customer = f"cus_anom{uuid.uuid4().hex[:8]}"
    story = recent("checkout_active", customer)
    for raw in story.events:
        world.publish_event(raw)
    world.deliver(rounds=3)
    assert story.final_subscription is not None
    # Someone put the customer on a price made by hand in the Dashboard (not in our catalog).
    hand_made = scenarios.subscription_event(
        "customer.subscription.updated",
        int(time.time()),
        event_id=f"evt_handmade{customer[4:]}",
        sub_id=story.final_subscription["id"],
        customer_id=customer,
        prices={"dataface_handmade_special": 1},
    )
    world.publish_event(hand_made)
    world.deliver()
    flagged = world.repo.get_record(customer)
    assert flagged is not None and [a.code for a in flagged.anomalies] == ["unknown_price"]
    shown = world.run("account", "show", customer).stdout
    assert "unknown_price" in shown
    world.entitlement_messages()
    # ...and support moved them back to the catalog plan in Stripe.
    _seed_stripe(world, story)

    dry = world.json("reconcile", "run", "--anomalies", "--dry-run")
    assert [r["customer_id"] for r in dry["results"]] == [customer]
    assert world.repo.get_record(customer) == flagged
    done = world.json("reconcile", "run", "--anomalies")
    (result,) = done["results"]
    assert result["applied"] is True and result["anomalies_cleared"] == 1
    fixed = world.repo.get_record(customer)
    assert fixed is not None and fixed.anomalies == []
    assert fixed.status == story.expected.status
    assert world.json("reconcile", "run", "--anomalies")["results"] == []
