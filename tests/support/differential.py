"""Differential check of our domain against the Stripe billing simulator (the oracle).

`truth(...)` reads what Stripe's own events say about a customer at an instant (the
subscription that governs by the stated rule, its status, items and the failure streak)
and applies our published grace policy; it never looks at our record. A run plays random
stories on the simulator, delivers every event the way Stripe and Pub/Sub may (in order,
or shuffled with duplicates and some up to 3 days late), re-evaluates due customers on the
job's 15-minute ticks, and compares each customer's record with the truth at the end.

A mismatch with an open anomaly is allowed only if one reconcile (Stripe's current
objects, what the every-minute job does) makes the record agree; anything else is a
disagreement, reported with the story kind and the seed that reproduces it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import statemachine
from schemas.documents import BillingRecord
from schemas.entitlements import AccessLevel
from schemas.stripe import Invoice, StripeEvent, Subscription
from statemachine.decision import Policy
from statemachine.subscriptions import governing
from tests.support.fake_repository import is_due
from tests.support.simulator import DAY, MINUTE, Run, Settings, Simulator, play, random_stories

TICK = 15 * MINUTE  # the re-evaluation job's schedule (infra/terraform/scheduler.tf)
LATE = 3 * DAY  # Stripe retries undelivered events for up to three days
HANDLED = (
    "checkout.session.completed",
    "customer.subscription.",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.upcoming",
)


@dataclass(frozen=True)
class Truth:
    """What a customer has: Stripe's side (the oracle) or ours (`visible`), compared as is."""

    status: str
    access: AccessLevel
    plan: str | None
    add_ons: tuple[str, ...]  # sorted, seats excluded
    seats: int  # beyond the plan's


def visible(record: BillingRecord, policy: Policy) -> Truth:
    ent = record.entitlements
    seat = policy.catalog.seat_add_on()
    add_ons = tuple(sorted(a for a in (ent.add_ons if ent else ()) if seat is None or a != seat.id))
    seats = 0
    if ent and ent.plan:
        seats = ent.limits.seats - policy.catalog.plan(ent.plan).limits.seats
    return Truth(record.status, _level(record.access), ent.plan if ent else None, add_ons, seats)


def _level(access: AccessLevel) -> AccessLevel:
    # Grace is full access with a deadline: the same thing to the customer.
    return AccessLevel.FULL if access is AccessLevel.GRACE else access


# -- the oracle ------------------------------------------------------------------------


@dataclass
class _Timeline:
    latest: dict[str, Subscription] = field(default_factory=dict)
    streak_start: dict[str, int] = field(default_factory=dict)
    streak_invoice: dict[str, str] = field(default_factory=dict)
    past_due_since: dict[str, int] = field(default_factory=dict)

    def feed(self, raw: dict[str, Any]) -> None:
        obj = raw["data"]["object"]
        if obj.get("object") == "subscription":
            sub = Subscription.model_validate(obj)
            self.latest[sub.id] = sub
            if sub.status in ("active", "trialing"):
                self.streak_start.pop(sub.id, None)
                self.streak_invoice.pop(sub.id, None)
            if sub.status == "past_due":
                self.past_due_since.setdefault(sub.id, raw["created"])
            else:
                self.past_due_since.pop(sub.id, None)
        elif raw["type"] in ("invoice.payment_failed", "invoice.paid"):
            self._invoice(raw)

    def _invoice(self, raw: dict[str, Any]) -> None:
        invoice = Invoice.model_validate(raw["data"]["object"])
        sub_id = invoice.subscription_id
        if sub_id is None:
            return
        if raw["type"] == "invoice.payment_failed" and sub_id not in self.streak_start:
            self.streak_start[sub_id] = raw["created"]
            self.streak_invoice[sub_id] = invoice.id
        elif raw["type"] == "invoice.paid" and self.streak_invoice.get(sub_id) == invoice.id:
            self.streak_start.pop(sub_id, None)
            self.streak_invoice.pop(sub_id, None)


Composition = Callable[[Subscription], tuple[str | None, tuple[str, ...], int]]


class Oracle:
    """Stripe's side, fed the simulator's events in the order Stripe emitted them."""

    def __init__(self, policy: Policy, composition: Composition) -> None:
        self.policy = policy
        self.composition = composition
        self._lines: dict[str, _Timeline] = {}

    def feed(self, raw: dict[str, Any]) -> None:
        customer = raw["data"]["object"].get("customer")
        if isinstance(customer, str):
            self._lines.setdefault(customer, _Timeline()).feed(raw)

    def truth(self, customer_id: str, at: int, tracked: str | None) -> Truth:
        """What Stripe's events so far plus our grace policy allow this customer at `at`."""
        line = self._lines.get(customer_id, _Timeline())
        sub = governing(line.latest.values(), tracked, self.policy.catalog)
        if sub is None:
            return Truth("none", AccessLevel.NONE, None, (), 0)
        access = {
            "active": AccessLevel.FULL,
            "trialing": AccessLevel.FULL,
            "past_due": AccessLevel.FULL,
            "paused": AccessLevel.RESTRICTED,
        }.get(sub.status, AccessLevel.NONE)
        if sub.status == "past_due":
            start = line.streak_start.get(sub.id, line.past_due_since.get(sub.id, at))
            if at >= start + self.policy.grace_seconds:
                access = AccessLevel.RESTRICTED
        end = sub.cancel_at or (sub.period_end if sub.cancel_at_period_end else None)
        if access is AccessLevel.FULL and end is not None and at >= end:
            access = AccessLevel.NONE
        if access is AccessLevel.NONE:
            return Truth(sub.status, access, None, (), 0)
        plan, add_ons, seats = self.composition(sub)
        return Truth(sub.status, access, plan, tuple(sorted(add_ons)), seats)

    def current(self, customer_id: str) -> list[Subscription]:
        return list(self._lines.get(customer_id, _Timeline()).latest.values())


def agrees(record: BillingRecord, want: Truth, policy: Policy) -> bool:
    return visible(record, policy) == want


# -- delivery ----------------------------------------------------------------------------


def ours(event: dict[str, Any]) -> bool:
    return str(event["type"]).startswith(HANDLED)


def deliveries(
    events: list[dict[str, Any]], rng: random.Random, *, shuffled: bool
) -> list[tuple[int, dict[str, Any]]]:
    """(delivery time, event): in order at once, or jittered, duplicated and some late."""
    plan: list[tuple[int, float, dict[str, Any]]] = []
    for n, event in enumerate(e for e in events if ours(e)):
        if not shuffled:
            plan.append((event["created"], n, event))
            continue
        delay = rng.randint(0, 90) if rng.random() > 0.05 else rng.randint(0, LATE)
        plan.append((event["created"] + delay, rng.random(), event))
        if rng.random() < 0.1:  # at-least-once: a redelivery later
            plan.append((event["created"] + delay + rng.randint(0, 600), rng.random(), event))
    plan.sort(key=lambda p: (p[0], p[1]))
    return [(when, event) for when, _, event in plan]


# -- a run -------------------------------------------------------------------------------


class Judged(Protocol):
    """What the end-of-run judgement reads: the record, and one reconcile of it."""

    def record(self, customer_id: str) -> BillingRecord | None: ...

    def reconcile(
        self, record: BillingRecord, sub: Subscription | None, now: int
    ) -> BillingRecord: ...


class DomainTarget(Judged, Protocol):
    """Where events go: the pure domain here, the real Subscriber on the emulators there."""

    def deliver(self, event: dict[str, Any]) -> str: ...

    def reevaluate(self, now: int) -> None: ...


@dataclass
class Report:
    stories: Counter[str] = field(default_factory=Counter)
    agreed: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)  # resolved by one reconcile
    disagreements: list[str] = field(default_factory=list)
    # In-order runs: access at a tick that differs from what Stripe allowed at that tick.
    instant_disagreements: list[str] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.stories.update(other.stories)
        self.agreed.update(other.agreed)
        self.anomalies.update(other.anomalies)
        self.disagreements.extend(other.disagreements)
        self.instant_disagreements.extend(other.instant_disagreements)

    def table(self) -> str:
        lines = [
            "| story kind | stories | agreed | anomaly, resolved by reconcile |",
            "|---|---:|---:|---:|",
        ]
        for kind in sorted(self.stories):
            lines.append(
                f"| {kind} | {self.stories[kind]} | {self.agreed[kind]} | {self.anomalies[kind]} |"
            )
        total = sum(self.stories.values())
        lines.append(
            f"| all | {total} | {sum(self.agreed.values())} | {sum(self.anomalies.values())} |"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class World:
    sim: Simulator
    runs: list[Run]
    seed: int

    def composition(self, sub: Subscription) -> tuple[str | None, tuple[str, ...], int]:
        return self.sim.composition(sub.id)


def world(seed: int, count: int, *, shape: str = "current", after_retries: str = "cancel") -> World:
    settings = Settings(after_retries=after_retries)  # type: ignore[arg-type]
    sim = Simulator(seed=seed, shape=shape, settings=settings)  # type: ignore[arg-type]
    runs = play(sim, random_stories(random.Random(seed), count))
    return World(sim, runs, seed)


def run(
    w: World, target: DomainTarget, policy: Policy, *, shuffled: bool, rng: random.Random
) -> Report:
    """Deliver, re-evaluate on ticks, and judge. In order, access is also checked at every
    tick the job ran: it must be exactly what Stripe plus our grace policy allow then."""
    events = w.sim.events
    plan = deliveries(events, rng, shuffled=shuffled)
    oracle = Oracle(policy, w.composition)
    fed = 0
    report = Report()
    last_tick = 0
    for when, event in plan:
        tick = when - when % TICK
        if tick > last_tick:
            target.reevaluate(tick)  # the job ran at least once since the last delivery
            last_tick = tick
            fed = _feed_until(oracle, events, fed, tick)
            if not shuffled:
                _check_instant(w, target, oracle, tick, report)
        kind = target.deliver(event)
        assert kind != "dead_lettered", (
            f"seed {w.seed}: {event['type']} {event['id']} dead-lettered"
        )
    end = max(w.sim.now, plan[-1][0] if plan else 0) + TICK
    end -= end % TICK
    target.reevaluate(end)
    _feed_until(oracle, events, fed, end + 1)
    judge(w, target, policy, oracle, end, report)
    return report


def _feed_until(oracle: Oracle, events: list[dict[str, Any]], fed: int, before: int) -> int:
    while fed < len(events) and events[fed]["created"] < before:
        oracle.feed(events[fed])
        fed += 1
    return fed


def _check_instant(w: World, target: DomainTarget, oracle: Oracle, at: int, report: Report) -> None:
    for r in w.runs:
        record = target.record(r.customer_id) if r.customer_id else None
        if record is None or record.anomalies:
            continue  # not seen yet, or a question the minute's reconcile answers
        want = oracle.truth(r.customer_id, at, record.subscription_id)
        got = _level(record.access)
        if (record.status, got) != (want.status, want.access):
            report.instant_disagreements.append(
                f"seed {w.seed} {r.story.kind} {r.customer_id} at {at}: ours "
                f"{record.status}/{got.value} vs Stripe {want.status}/{want.access.value}"
            )


def judge(
    w: World, target: Judged, policy: Policy, oracle: Oracle, at: int, report: Report
) -> None:
    for r in w.runs:
        kind = r.story.kind
        report.stories[kind] += 1
        record = target.record(r.customer_id) or BillingRecord(customer_id=r.customer_id)
        want = oracle.truth(r.customer_id, at, record.subscription_id)
        if agrees(record, want, policy):
            report.agreed[kind] += 1
            continue
        if record.anomalies:
            chosen = governing(
                oracle.current(r.customer_id), record.subscription_id, policy.catalog
            )
            fixed = target.reconcile(record, chosen, at)
            if agrees(fixed, oracle.truth(r.customer_id, at, fixed.subscription_id), policy):
                report.anomalies[kind] += 1
                continue
        report.disagreements.append(
            f"seed {w.seed} {kind} {r.customer_id}: ours {visible(record, policy)} "
            f"vs Stripe {want}; anomalies {[a.code for a in record.anomalies]}"
        )


class PureDomain:
    def __init__(self, policy: Policy) -> None:
        self._sm = statemachine
        self.policy = policy
        self.records: dict[str, BillingRecord] = {}
        self.anomalies_seen: Counter[str] = Counter()

    def deliver(self, event: dict[str, Any]) -> str:
        parsed = StripeEvent.model_validate(event)
        customer = parsed.customer_id
        if customer is None:
            return "ignored"
        current = self.records.get(customer) or BillingRecord(customer_id=customer)
        decision = self._sm.decide(current, parsed, self.policy)
        self.records[customer] = decision.record
        if decision.kind == "anomaly" and decision.anomaly is not None:
            self.anomalies_seen[decision.anomaly.code] += 1
        return decision.kind

    def due(self, now: int) -> list[str]:
        return [c for c, r in self.records.items() if is_due(r, now)]

    def reevaluate(self, now: int) -> None:
        for customer in self.due(now):
            decision = self._sm.reevaluate(self.records[customer], now, self.policy)
            if decision.kind != "noop":
                self.records[customer] = decision.record

    def record(self, customer_id: str) -> BillingRecord | None:
        return self.records.get(customer_id)

    def reconcile(self, record: BillingRecord, sub: Subscription | None, now: int) -> BillingRecord:
        return self._sm.reconcile(record, sub, now, self.policy).record


__all__ = [
    "DomainTarget",
    "Judged",
    "Oracle",
    "PureDomain",
    "Report",
    "Truth",
    "World",
    "agrees",
    "deliveries",
    "judge",
    "run",
    "world",
]
