"""Scenarios 3 and 5: subscriber throughput against raw transactions, and scaling.

The subscriber is called in-process (Subscriber.handle with the real Firestore adapter
and Pub/Sub publisher on the emulators): what is measured is our code plus the storage
round trips, not an HTTP hop the raw baseline would not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from bench.events import Event, customer_story, plan_flip
from bench.raw_txn import precompute, raw_apply
from bench.sharded import run_streams
from bench.stats import summarize_ms
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.config import DEFAULT_DEAD_LETTER_TOPIC, DEFAULT_ENTITLEMENTS_TOPIC
from functions.log import configure_logging
from functions.services.apply import Applier
from functions.services.relay import OutboxRelay
from functions.services.subscriber import IncomingMessage, Subscriber
from statemachine.decision import Policy

POLICY = Policy(grace_period_days=7)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Keep the subscriber's INFO logging (its real cost) but send the lines nowhere.

    functions.log prints to whatever sys.stdout is at call time, so swapping it for the
    duration silences the in-process subscriber; bench progress goes to sys.__stdout__.
    """
    configure_logging("INFO")
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def make_subscriber(firestore_project: str, pubsub_project: str) -> Subscriber:
    repo_ = FirestoreRepository(firestore_project)
    pub = PubSubPublisher(pubsub_project)
    return Subscriber(
        Applier(repo_, OutboxRelay(repo_, pub, DEFAULT_ENTITLEMENTS_TOPIC), marker_ttl_days=35),
        pub,
        project=pubsub_project,
        dead_letter_topic=DEFAULT_DEAD_LETTER_TOPIC,
        policy=POLICY,
    )


def message_of(event: Event) -> IncomingMessage:
    data = json.dumps(event).encode()
    obj = event["data"]["object"]
    return IncomingMessage(
        data=data,
        attributes={"customer_id": str(obj.get("customer", "")), "event_type": event["type"]},
        message_id=uuid.uuid4().hex,
    )


def stories(customers: int, tag: str) -> list[list[Event]]:
    start = int(time.time()) - 7 * 86400
    return [customer_story(f"cus_{tag}{n:05d}", start, tag) for n in range(customers)]


def _handler(subscriber: Subscriber) -> Callable[[IncomingMessage], object]:
    def handle(message: IncomingMessage) -> object:
        outcome = subscriber.handle(message)
        if outcome.decision not in ("applied", "noop"):
            raise RuntimeError(f"bench event not applied: {outcome.decision}")
        return outcome

    return handle


@dataclass
class ThroughputRound:
    ours_eps: float
    raw_eps: float
    apply_only_eps: float
    events: int


def subscriber_round(
    pubsub_project: str, customers: int, workers: int, reverse: bool = False
) -> ThroughputRound:
    """One round: raw transactions, our apply alone, the whole subscriber (each on fresh
    customers in its own database). `reverse` runs them the other way round, so alternate
    rounds cancel the drift of a warming or busy machine instead of favouring one side."""
    tag = uuid.uuid4().hex[:6]
    streams = stories(customers, tag)
    events = sum(len(s) for s in streams)

    def raw() -> float:
        raw_db = firestore.Client(project=f"bench-raw-{tag}")
        by_customer: dict[str, list[Any]] = defaultdict(list)
        for writes in precompute([e for s in streams for e in s], POLICY):
            by_customer[writes.customer_id].append(writes)
        elapsed, _ = run_streams(
            list(by_customer.values()), lambda w: raw_apply(raw_db, w), workers
        )
        return elapsed

    def apply_only() -> float:
        repo = FirestoreRepository(f"bench-apply-{tag}")
        elapsed, _ = run_streams(
            [[_apply_op(e) for e in s] for s in streams],
            lambda op: repo.apply(op[0], op[1], marker_ttl_days=35),
            workers,
        )
        return elapsed

    def ours() -> float:
        subscriber = make_subscriber(f"bench-sub-{tag}", pubsub_project)
        elapsed, _ = run_streams(
            [[message_of(e) for e in s] for s in streams], _handler(subscriber), workers
        )
        return elapsed

    order = [("raw", raw), ("apply", apply_only), ("ours", ours)]
    if reverse:
        order.reverse()
    elapsed = {name: run() for name, run in order}
    return ThroughputRound(
        ours_eps=events / elapsed["ours"],
        raw_eps=events / elapsed["raw"],
        apply_only_eps=events / elapsed["apply"],
        events=events,
    )


def _apply_op(raw: Event) -> tuple[Any, Any]:
    """Our repository transaction with the domain, minus parsing, relay and logging."""
    import statemachine
    from functions.ports import Operation
    from schemas.stripe import StripeEvent

    event = StripeEvent.model_validate(raw)
    op = Operation(
        op_id=event.id, op_type=event.type, customer_id=event.customer_id, at=event.created
    )
    return op, lambda record: statemachine.decide(record, event, POLICY)


def warm_up(pubsub_project: str) -> None:
    """Open the gRPC channels and import paths once, outside any measurement."""
    tag = uuid.uuid4().hex[:6]
    subscriber = make_subscriber(f"bench-warm-{tag}", pubsub_project)
    for stream in stories(2, tag):
        for event in stream:
            subscriber.handle(message_of(event))


# --- scaling -------------------------------------------------------------------------------

_BATCH = 400


def _seed_history(db: firestore.Client, customer: str, entries: int) -> None:
    ref = db.collection("customers").document(customer).collection("history")
    for first in range(0, entries, _BATCH):
        batch = db.batch()
        for n in range(first, min(first + _BATCH, entries)):
            batch.set(
                ref.document(f"evt_seed{n:06d}"),
                {
                    "event_id": f"evt_seed{n:06d}",
                    "event_type": "customer.subscription.updated",
                    "from_status": "active",
                    "to_status": "active",
                    "decision": "applied",
                    "reason": "seeded history",
                    "trigger": None,
                    "version": n,
                    "at": 1_700_000_000 + n,
                    "source": "webhook",
                },
            )
        batch.commit()


def _seed_customers(db: firestore.Client, count: int, tag: str) -> None:
    for first in range(0, count, _BATCH):
        batch = db.batch()
        for n in range(first, min(first + _BATCH, count)):
            customer = f"cus_fill{tag}{n:06d}"
            batch.set(
                db.collection("customers").document(customer),
                {"customer_id": customer, "status": "active", "version": 1},
            )
        batch.commit()


def _timed_flips(
    subscriber: Subscriber, customer: str, first: int, count: int, start: int, tag: str
) -> list[float]:
    """Plan flips n = first..first+count-1 for one customer; every one changes entitlements."""
    durations = []
    for n in range(first, first + count):
        message = message_of(plan_flip(customer, start, n, tag))
        started = time.perf_counter()
        outcome = subscriber.handle(message)
        durations.append(time.perf_counter() - started)
        if outcome.decision != "applied":
            raise RuntimeError(f"scaling event not applied: {outcome.decision}")
    return durations


@dataclass
class ScalingResult:
    small_history: dict[str, float]
    large_history: dict[str, float]
    few_customers: dict[str, float]
    many_customers: dict[str, float]
    seed_seconds: float


def scaling(pubsub_project: str, small: int, large: int, events: int) -> ScalingResult:
    """Per-event time of the subscriber: small vs large history, few vs many customers."""
    tag = uuid.uuid4().hex[:6]
    seed_started = time.perf_counter()
    few_project, many_project = f"bench-few-{tag}", f"bench-many-{tag}"
    few_db, many_db = firestore.Client(project=few_project), firestore.Client(project=many_project)
    small_customer, large_customer = f"cus_small{tag}", f"cus_large{tag}"
    _seed_history(few_db, small_customer, small)
    _seed_history(few_db, large_customer, large)
    _seed_customers(few_db, small, tag)
    _seed_customers(many_db, large, tag)
    seed_seconds = time.perf_counter() - seed_started

    few = make_subscriber(few_project, pubsub_project)
    many = make_subscriber(many_project, pubsub_project)
    start = int(time.time()) - 86400
    cases = {
        "small": (few, small_customer),
        "large": (few, large_customer),
        "few": (few, f"cus_fewc{tag}"),
        "many": (many, f"cus_manyc{tag}"),
    }
    # The first event creates each record: not part of the steady-state figure.
    for name, (subscriber, customer) in cases.items():
        _timed_flips(subscriber, customer, 0, 1, start, f"{tag}{name}")
    results: dict[str, list[float]] = defaultdict(list)
    # Interleave the cases in slices so drift on a shared machine hits all of them alike.
    slices = 4
    per = max(1, events // slices)
    for part in range(slices):
        for name, (subscriber, customer) in cases.items():
            first = 1 + part * per
            results[name] += _timed_flips(subscriber, customer, first, per, start, f"{tag}{name}")
    return ScalingResult(
        small_history=summarize_ms(results["small"]),
        large_history=summarize_ms(results["large"]),
        few_customers=summarize_ms(results["few"]),
        many_customers=summarize_ms(results["many"]),
        seed_seconds=round(seed_seconds, 2),
    )
