"""The scheduled jobs' HTTP entry points (Cloud Scheduler calls each one).

relay_sweep every minute, reevaluate_due every 15 minutes, reconcile_all nightly and, with
`?scope=anomalies`, every minute for the customers with an open anomaly. Each
runs its service over many customers (functions/services/batch.py): one customer's
failure is logged and skipped, and the job answers 500 only when every customer failed,
so the scheduler's retry and the alerting see a real outage and nothing else.
Each first checks the scheduler's OIDC token when configured (functions/entrypoints/oidc.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any

import flask

from functions import composition
from functions.config import subscriber_settings
from functions.entrypoints.oidc import denied
from functions.services.reevaluate import reevaluate_due


def _answer(payload: dict[str, Any], outage: bool) -> flask.Response:
    return flask.make_response(flask.jsonify(payload), 500 if outage else 200)


def _scheduler_only(handler: Callable[..., flask.Response]) -> Callable[..., flask.Response]:
    @wraps(handler)
    def guarded(*args: Any) -> flask.Response:
        refusal = denied(flask.request, "jobs")
        return refusal if refusal is not None else handler(*args)

    return guarded


@_scheduler_only
def handle_sweep_request() -> flask.Response:
    result = composition.relay().sweep(subscriber_settings().outbox_sweep_after_seconds)
    payload = {"customers": result.customers, "published": result.published}
    return _answer({**payload, "failed": len(result.failed)}, result.outage)


@_scheduler_only
def handle_reevaluate_request() -> flask.Response:
    result = reevaluate_due(composition.applier(), composition.policy(), int(time.time()))
    payload = {"checked": result.checked, "changed": result.changed}
    return _answer({**payload, "failed": len(result.failed)}, result.outage)


@_scheduler_only
def handle_reconcile_all_request(request: flask.Request) -> flask.Response:
    scope = request.args.get("scope", "all")
    if scope == "anomalies":
        summary = composition.reconciler().reconcile_anomalies()
    elif scope == "all":
        summary = composition.reconciler().reconcile_all()
    else:
        error = {"error": "bad_request", "message": "scope is 'all' or 'anomalies'"}
        return flask.make_response(flask.jsonify(error), 400)
    return _answer(summary, summary.pop("outage"))


@_scheduler_only
def handle_probe_request() -> flask.Response:
    result = composition.probe().run()
    payload = asdict(result)
    # 500 on failure: the scheduler's job status shows it, beside the absence alert.
    return _answer(payload, not result.ok)
