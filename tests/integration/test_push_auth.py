"""Issue 17 row 10: the deployed subscriber and job functions check the caller's Google OIDC
token themselves. The real functions-framework processes run with OIDC_* set, pointing at
a local certificate server; forged pushes and job calls are refused and change nothing,
a correctly signed one is applied."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from functions.adapters.firestore_repository import FirestoreRepository
from infra.local.emulators import Emulators, free_port
from infra.local.scenarios import build
from infra.local.stack import SUBSCRIBER_TARGET, RunningFunction, start_function
from tests.conftest import provision_project
from tests.integration.subscriber_support import entitlements
from tests.support.oidc import (
    PUSH_ACCOUNT,
    SCHEDULER_ACCOUNT,
    CertsServer,
    SigningKey,
    unsigned_token,
)

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def certs(key: SigningKey) -> Iterator[CertsServer]:
    with CertsServer(key) as server:
        yield server


def run(
    target: str, emulators: Emulators, certs: CertsServer, account: str, **kw: Any
) -> tuple[str, RunningFunction, str]:
    project = provision_project(emulators).env["GOOGLE_CLOUD_PROJECT"]
    port = free_port()
    audience = f"https://{target}-000000.europe-west1.run.app"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        **emulators.env(),
        "OIDC_AUDIENCE": audience,
        "OIDC_SERVICE_ACCOUNTS": account,
        "OIDC_CERTS_URL": certs.url,
    }
    return project, start_function(target, port, env, **kw), audience


def push_body(event: dict[str, Any]) -> dict[str, Any]:
    """What Pub/Sub push POSTs to the endpoint."""
    data = base64.b64encode(json.dumps(event).encode()).decode()
    customer = event["data"]["object"]["customer"]
    return {
        "message": {
            "data": data,
            "attributes": {"event_id": event["id"], "customer_id": customer},
            "messageId": "1",
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/stripe-events-subscriber",
    }


def test_forged_pushes_are_refused_and_change_nothing(
    emulators: Emulators, key: SigningKey, certs: CertsServer
) -> None:
    project, function, audience = run(
        SUBSCRIBER_TARGET, emulators, certs, PUSH_ACCOUNT, signature_type="cloudevent"
    )
    scenario = build("checkout_active", customer_id="cus_forged", account_id="acct_forged")
    event = scenario.events[0]
    body = push_body(event)
    cloud_event_headers = {
        "ce-id": "1",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/stripe-events",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
    }
    forgeries = [
        ({}, 401),
        ({"Authorization": f"Bearer {unsigned_token(audience)}"}, 401),
        ({"Authorization": f"Bearer {SigningKey().token(audience=audience)}"}, 401),
        ({"Authorization": f"Bearer {key.token(audience='https://elsewhere.run.app')}"}, 401),
        ({"Authorization": f"Bearer {key.token(audience=audience, issuer='https://x')}"}, 401),
        ({"Authorization": f"Bearer {key.token(audience=audience, issued=1, ttl=60)}"}, 401),
        ({"Authorization": f"Bearer {key.token(audience=audience, email=SCHEDULER_ACCOUNT)}"}, 403),
        (cloud_event_headers, 401),
    ]
    repo = FirestoreRepository(project)
    try:
        for headers, status in forgeries:
            response = requests.post(function.url, json=body, headers=headers, timeout=10)
            assert response.status_code == status, (headers, response.text)
        assert not repo.is_processed(event["id"])
        assert repo.get_record("cus_forged") is None
        assert entitlements(project, quiet_seconds=1.0) == []
        assert function.logs().count('"message": "invoker_rejected"') == len(forgeries)

        genuine = {"Authorization": f"Bearer {key.token(audience=audience)}"}
        response = requests.post(function.url, json=body, headers=genuine, timeout=30)
        assert response.status_code == 200, response.text
        assert repo.is_processed(event["id"])
        assert certs.fetches == 1
    finally:
        function.stop()


@pytest.mark.parametrize("target", ["relay_sweep", "reevaluate_due", "reconcile_all"])
def test_job_endpoints_refuse_a_caller_that_is_not_the_scheduler(
    emulators: Emulators, key: SigningKey, certs: CertsServer, target: str
) -> None:
    _, function, audience = run(target, emulators, certs, SCHEDULER_ACCOUNT)
    try:
        for headers, status in [
            ({}, 401),
            ({"Authorization": f"Bearer {unsigned_token(audience, SCHEDULER_ACCOUNT)}"}, 401),
            ({"Authorization": f"Bearer {key.token(audience=audience)}"}, 403),
        ]:
            response = requests.post(function.url, headers=headers, timeout=10)
            assert response.status_code == status, response.text
        assert '"component": "jobs"' in function.logs()
        if target == "relay_sweep":  # the others need a Stripe API key to do their work
            token = key.token(audience=audience, email=SCHEDULER_ACCOUNT)
            ok = requests.post(
                function.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["published"] == 0
    finally:
        function.stop()
