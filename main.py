"""Cloud Functions entry points (the module Cloud Functions deploys from).

Each entry point is thin: it hands the request to its handler in functions/. Nothing
is built at import time; clients and settings are created on the first request.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from functions.entrypoints import checkout, entitlements, jobs, pubsub, webhook


@functions_framework.http
def stripe_webhook(request: flask.Request) -> flask.Response:
    return webhook.handle(request)


# Pub/Sub push (messagePublished). Returning acks; raising answers 5xx -> redelivery.
@functions_framework.cloud_event
def process_stripe_event(cloud_event: CloudEvent) -> None:
    pubsub.handle_cloud_event(cloud_event)


# Cloud Scheduler, every minute: republish outbox entries a crashed relay left unsent.
@functions_framework.http
def relay_sweep(request: flask.Request) -> flask.Response:
    return jobs.handle_sweep_request()


# Cloud Scheduler, every 15 minutes: grace, override and cancelled periods that ran out.
@functions_framework.http
def reevaluate_due(request: flask.Request) -> flask.Response:
    return jobs.handle_reevaluate_request()


# Cloud Scheduler, nightly: catch up on undelivered events, then reconcile every customer;
# and every minute with ?scope=anomalies: reconcile the customers with an open anomaly.
@functions_framework.http
def reconcile_all(request: flask.Request) -> flask.Response:
    return jobs.handle_reconcile_all_request(request)


# Called by our own services only (Cloud Functions IAM), for the account in the bearer token.
@functions_framework.http
def create_checkout_session(request: flask.Request) -> flask.Response:
    return checkout.create_checkout_session(request)


@functions_framework.http
def create_portal_session(request: flask.Request) -> flask.Response:
    return checkout.create_portal_session(request)


@functions_framework.http
def change_subscription(request: flask.Request) -> flask.Response:
    return checkout.change_subscription(request)


# The current-entitlements read API for our own services (internal ingress, Cloud
# Functions IAM, and a bearer token for audience dataface-entitlements).
@functions_framework.http
def entitlements_api(request: flask.Request) -> flask.Response:
    return entitlements.handle(request)


# Cloud Scheduler, every 5 minutes: a signed synthetic event through the public webhook,
# timed until its entitlement-changed message arrives (functions/services/probe.py).
@functions_framework.http
def synthetic_probe(request: flask.Request) -> flask.Response:
    return jobs.handle_probe_request()
