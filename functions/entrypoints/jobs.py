"""The nightly reconcile job (Cloud Scheduler -> `reconcile_all` function).

It is the safety net for webhooks nobody noticed were missed: first it publishes what
Stripe still lists as undelivered (the normal pipeline applies it), then it reconciles
every customer against Stripe's subscriptions. Customers that already agree with Stripe
are not written. One failing customer is logged and skipped, not fatal; the job answers
500 only when every customer failed (Stripe unreachable or the key revoked), so the
scheduler's retry and the alerting see a real outage.
"""

from __future__ import annotations

import time
from typing import Any

import flask

from functions import composition
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.config import stripe_api_settings, subscriber_settings
from functions.log import get_logger
from functions.services.reconcile import ReconcileService
from functions.services.reevaluate import reevaluate_due

# The job runs daily; two days of catch-up overlap so a failed night is covered next time.
CATCH_UP_SECONDS = 2 * 86_400


def build_service() -> ReconcileService:
    settings = subscriber_settings()
    return ReconcileService(
        composition.repository(),
        composition.relay(),
        SdkStripeGateway.from_settings(stripe_api_settings()),
        composition.policy(),
        publisher=composition.publisher(),
        events_topic=settings.stripe_events_topic,
        marker_ttl_days=settings.processed_event_ttl_days,
        livemode=settings.stripe_livemode,
    )


def run_reconcile_all(service: ReconcileService, now: float | None = None) -> dict[str, Any]:
    log = get_logger(component="reconcile")
    started = time.perf_counter()
    since = int(now if now is not None else time.time()) - CATCH_UP_SECONDS
    summary: dict[str, Any] = {"caught_up": 0, "checked": 0, "corrected": 0, "failed": 0}
    try:
        report = service.catch_up(since)
        summary["caught_up"] = len(report.published)
        summary["failed"] += len(report.failed)
    except Exception as exc:  # reconcile below still repairs state without the events
        log.error("catch_up_failed", error=f"{type(exc).__name__}: {exc}")
        summary["failed"] += 1
    for customer in service.all_customers():
        summary["checked"] += 1
        try:
            outcome = service.reconcile(customer)
        except Exception as exc:
            summary["failed"] += 1
            log.error(
                "reconcile_failed", customer_id=customer, error=f"{type(exc).__name__}: {exc}"
            )
            continue
        if outcome.applied and not outcome.duplicate:
            summary["corrected"] += 1
            log.warning(
                "reconcile_corrected",
                customer_id=customer,
                decision=outcome.kind,
                fields=sorted(outcome.changes),
            )
    summary["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    log.info("reconcile_run", **summary)
    return summary


def handle_reconcile_all_request() -> tuple[dict[str, Any], int]:
    summary = run_reconcile_all(build_service())
    everything_failed = summary["checked"] > 0 and summary["failed"] >= summary["checked"]
    return summary, 500 if everything_failed else 200


def handle_sweep_request() -> flask.Response:
    result = composition.relay().sweep(subscriber_settings().outbox_sweep_after_seconds)
    return flask.jsonify({"customers": result.customers, "published": result.published})


def handle_reevaluate_request() -> flask.Response:
    settings = subscriber_settings()
    result = reevaluate_due(
        composition.repository(),
        composition.relay(),
        composition.policy(),
        int(time.time()),
        marker_ttl_days=settings.processed_event_ttl_days,
    )
    return flask.jsonify({"checked": result.checked, "changed": result.changed})
