"""Reconcile Firestore with Stripe, and catch up on webhooks Stripe failed to deliver.

Reconcile reads the customer's subscriptions from Stripe (the gateway paginates and paces
requests under Stripe's rate limit), picks the one that governs access, and hands it to
the domain's `reconcile` like any other input: the correction is a recorded transition in
the customer's history with source=reconcile and an entitlement change in the outbox,
never a silent overwrite of the record. A customer the domain finds correct is not written
at all (no marker, no history entry), so a reconcile sweep leaves healthy customers alone.

The op id is derived from the Stripe subscription's content and the record version it was
planned against, so running the same reconciliation twice applies it once.

Catch-up lists events with delivery_success=false (Stripe keeps 30 days) and publishes
each one to `stripe-events` exactly as the webhook would have, so the normal subscriber
path (ordering, idempotency, dead letters) applies; events we already processed are
skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import statemachine
from functions import stripe_events
from functions.errors import RelayDeferred
from functions.log import get_logger
from functions.ports import AuditLog, Operation, Publisher, StripeGateway
from functions.services.accounts import OPS_PREFIX, diff_records
from functions.services.apply import Applied, Applier
from functions.services.audit import new_record
from functions.services.batch import per_customer
from schemas.documents import BillingRecord
from schemas.stripe import StripeEvent, Subscription
from statemachine.decision import Decision, Policy
from statemachine.subscriptions import governing
from statemachine.synthetic import is_synthetic

CATCH_UP_WINDOW_SECONDS = 30 * 86_400  # Stripe's List Events API retention
# The nightly job runs daily; two days of catch-up overlap so a failed night is covered.
CATCH_UP_SECONDS = 2 * 86_400
# Customers with open anomalies reconciled per run of the every-minute job: one Stripe
# read each, well within the gateway's rate limit and the job's minute.
ANOMALY_BATCH = 50
# Who the audit names when the scheduled job, not a person, corrected a customer.
SCHEDULED_ACTOR = "scheduler:reconcile_all"
ANOMALY_ACTOR = "scheduler:reconcile_anomalies"


@dataclass(frozen=True)
class ReconcileOutcome:
    customer_id: str
    subscription_id: str | None
    stripe_status: str | None
    kind: str  # the domain's decision kind, or "unchanged" when nothing was written
    changes: dict[str, tuple[Any, Any]]
    applied: bool
    duplicate: bool = False
    published: int = 0
    relay_error: str | None = None
    anomalies_cleared: int = 0
    # Codes of the anomalies still open once this reconcile is done.
    anomalies_open: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "subscription_id": self.subscription_id,
            "stripe_status": self.stripe_status,
            "decision": self.kind,
            "changes": {k: {"firestore": a, "stripe": b} for k, (a, b) in self.changes.items()},
            "applied": self.applied,
            "duplicate": self.duplicate,
            "published": self.published,
            "relay_error": self.relay_error,
            "anomalies_cleared": self.anomalies_cleared,
        }


@dataclass
class CatchUpReport:
    found: list[str] = field(default_factory=list)
    published: dict[str, str] = field(default_factory=dict)  # event id -> message id
    already_processed: list[str] = field(default_factory=list)
    other_mode: list[str] = field(default_factory=list)  # livemode differs: webhook ignores
    failed: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


def _codes(record: BillingRecord) -> tuple[str, ...]:
    return tuple(sorted({a.code for a in record.anomalies}))


def op_id_for(record: BillingRecord, subscription: Subscription | None) -> str:
    content = subscription.model_dump(mode="json") if subscription else None
    digest = hashlib.sha256(
        json.dumps([record.version, content], sort_keys=True, default=str).encode()
    ).hexdigest()[:20]
    return f"{OPS_PREFIX}reconcile_{record.customer_id}_{digest}"


class ReconcileService:
    def __init__(
        self,
        applier: Applier,
        gateway: StripeGateway,
        policy: Policy,
        *,
        audit: AuditLog,
        publisher: Publisher,
        events_topic: str,
        livemode: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._applier = applier
        self._repo = applier.repo
        self._gateway = gateway
        self._livemode = livemode
        self._policy = policy
        self._audit = audit
        self._publisher = publisher
        self._topic = events_topic
        self._clock = clock

    # -- which customers -----------------------------------------------------------------

    # The synthetic probe's customer is not in Stripe: reconciling it would "cancel" it.
    def all_customers(self) -> list[str]:
        return [
            r.customer_id for r in self._repo.list_customers() if not is_synthetic(r.customer_id)
        ]

    def customers_with_anomalies(self, limit: int = 10_000) -> list[str]:
        return [c for c in self._repo.with_open_anomalies(limit) if not is_synthetic(c)]

    # -- one customer --------------------------------------------------------------------

    def plan(self, customer_id: str) -> tuple[BillingRecord, Subscription | None, Decision]:
        """What reconcile would do, read from Stripe and decided by the domain; no write."""
        if is_synthetic(customer_id):
            raise ValueError(f"{customer_id} is the synthetic probe customer: never reconciled")
        record = self._repo.get_record(customer_id) or BillingRecord(customer_id=customer_id)
        subs = [
            Subscription.model_validate(raw)
            for raw in self._gateway.list_customer_subscriptions(customer_id)
        ]
        subscription = governing(subs, record.subscription_id, self._policy.catalog)
        decision = statemachine.reconcile(record, subscription, int(self._clock()), self._policy)
        return record, subscription, decision

    def reconcile(
        self, customer_id: str, *, actor: str = SCHEDULED_ACTOR, dry_run: bool = False
    ) -> ReconcileOutcome:
        record, subscription, planned = self.plan(customer_id)
        changes = diff_records(record, planned.record)
        base = partial(
            ReconcileOutcome,
            customer_id=customer_id,
            subscription_id=subscription.id if subscription else None,
            stripe_status=subscription.status if subscription else None,
            # What stays open if nothing is written (unchanged, dry run, a duplicate op).
            anomalies_open=_codes(planned.record),
        )
        if planned.kind in ("noop", "duplicate", "ignored") and not changes:
            return base(kind="unchanged", changes={}, applied=False)
        if dry_run:
            return base(kind=planned.kind, changes=changes, applied=False)
        now = int(self._clock())
        op = Operation(
            op_id=op_id_for(record, subscription),
            op_type="ops.reconcile",
            customer_id=customer_id,
            at=now,
            source="reconcile",
        )

        def decide(current: BillingRecord) -> Decision:
            return statemachine.reconcile(current, subscription, now, self._policy)

        relay_error = None
        try:
            applied = self._applier.apply(op, decide)
        except RelayDeferred as exc:
            applied, relay_error = cast(Applied, exc.committed), str(exc)
        outcome = self._outcome(base, record, applied, changes, relay_error)
        if outcome.applied and not outcome.duplicate:
            # The correction is in the customer's history; the audit says who ran it.
            self._audit.write(
                new_record(actor, "reconcile", customer_id, fields=sorted(outcome.changes))
            )
        return outcome

    @staticmethod
    def _outcome(
        base: Callable[..., ReconcileOutcome],
        record: BillingRecord,
        applied: Applied,
        planned_changes: dict[str, tuple[Any, Any]],
        relay_error: str | None,
    ) -> ReconcileOutcome:
        result = applied.result
        decision = result.decision
        # A duplicate wrote nothing: what stays open is what the stored record holds (an
        # anomaly the repository raised, such as account_taken, is not in the plan).
        written = {"anomalies_open": _codes(decision.record if decision else record)}
        return base(
            **written,
            kind=decision.kind if decision else "duplicate",
            changes=diff_records(record, decision.record) if decision else planned_changes,
            applied=decision is not None,
            duplicate=result.duplicate,
            published=applied.published,
            relay_error=relay_error,
            anomalies_cleared=(
                max(0, len(record.anomalies) - len(decision.record.anomalies)) if decision else 0
            ),
        )

    # -- every customer (the nightly job) ------------------------------------------------

    def reconcile_all(self, now: float | None = None) -> dict[str, Any]:
        """Catch up on undelivered events, then reconcile every customer.

        One failing customer is logged and skipped (functions.services.batch); catch-up
        failing does not stop reconcile, which repairs state without the events.
        """
        log = get_logger(component="reconcile")
        started = time.perf_counter()
        since = int(now if now is not None else self._clock()) - CATCH_UP_SECONDS
        summary: dict[str, Any] = {"caught_up": 0, "checked": 0, "corrected": 0, "failed": 0}
        try:
            caught = self.catch_up(since)
            summary["caught_up"], summary["failed"] = len(caught.published), len(caught.failed)
        except Exception as exc:
            log.error("catch_up_failed", error=f"{type(exc).__name__}: {exc}")
            summary["failed"] += 1
        corrected: list[ReconcileOutcome] = []

        def note(customer: str, outcome: ReconcileOutcome) -> None:
            if outcome.applied and not outcome.duplicate:
                corrected.append(outcome)
                log.warning(
                    "reconcile_corrected",
                    customer_id=customer,
                    decision=outcome.kind,
                    fields=sorted(outcome.changes),
                )

        report = per_customer("reconcile", self.all_customers(), self.reconcile, on_result=note)
        summary["checked"] = len(report.done) + len(report.failed)
        summary["corrected"] = len(corrected)
        summary["failed"] += len(report.failed)
        summary["outage"] = report.outage
        summary["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        log.info("reconcile_run", **summary)
        return summary

    # -- open anomalies (every minute) ---------------------------------------------------

    def reconcile_anomalies(self, limit: int = ANOMALY_BATCH) -> dict[str, Any]:
        """Reconcile each customer with an open anomaly against Stripe, longest open first.

        An anomaly is a question the event stream could not answer; Stripe's current
        object answers most of them. What it cannot (an unknown price, say) is logged as
        `anomaly_unresolved`, which is what pages on-call. At most `limit` customers a
        run keeps the Stripe reads within the gateway's rate limit and the job's minute.
        """
        log = get_logger(component="reconcile")
        unresolved: list[str] = []

        def note(customer: str, outcome: ReconcileOutcome) -> None:
            if outcome.anomalies_open:
                unresolved.append(customer)
                log.error(
                    "anomaly_unresolved", customer_id=customer, anomaly_codes=outcome.anomalies_open
                )
            elif outcome.applied:
                log.info("anomaly_resolved", customer_id=customer, decision=outcome.kind)

        targets = self.customers_with_anomalies(limit)
        work = partial(self.reconcile, actor=ANOMALY_ACTOR)
        report = per_customer("reconcile_anomalies", targets, work, on_result=note)
        summary = {
            "checked": len(targets),
            "resolved": len(report.done) - len(unresolved),
            "unresolved": len(unresolved),
            "failed": len(report.failed),
            "outage": report.outage,
        }
        log.info("anomaly_reconcile_run", **{k: v for k, v in summary.items() if k != "outage"})
        return summary

    # -- missed webhooks -----------------------------------------------------------------

    def catch_up(
        self,
        since: int,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> CatchUpReport:
        """Publish undelivered events created at or after `since` (oldest first)."""
        raw_events = events if events is not None else self.undelivered(since)
        report = CatchUpReport(dry_run=dry_run)
        for raw in raw_events:
            event = StripeEvent.model_validate(raw)
            report.found.append(event.id)
            if event.livemode != self._livemode:
                report.other_mode.append(event.id)
            elif self._repo.is_processed(event.id):
                report.already_processed.append(event.id)
            elif not dry_run:
                try:
                    message = stripe_events.from_api(raw, arrived_by=stripe_events.CATCH_UP)
                    report.published[event.id] = self._publisher.publish(
                        self._topic,
                        message.data,
                        attributes=message.attributes,
                        ordering_key=message.ordering_key,
                    )
                except Exception as exc:
                    # Left for the next run (the window overlaps); on-call sees why here.
                    report.failed[event.id] = f"{type(exc).__name__}: {exc}"
                    get_logger(component="reconcile").error(
                        "catch_up_event_failed", event_id=event.id, error=report.failed[event.id]
                    )
            if progress:
                progress(1)
        return report

    def undelivered(self, since: int) -> list[dict[str, Any]]:
        floor = int(self._clock()) - CATCH_UP_WINDOW_SECONDS
        events = self._gateway.list_undelivered_events(max(since, floor))
        # Oldest first, so per-customer ordering on the topic follows Stripe's order.
        return sorted(events, key=lambda e: (int(e.get("created", 0)), str(e.get("id"))))
