"""A downstream service starting cold: the read API, then the stream, with the library.

The stream has already run for a while when the consumer starts (its subscription did not
exist then, so those messages are gone for it). It subscribes, loads every customer's
current state from the read API (served by functions-framework on the Firestore
emulator), and then stays current from the entitlement-changed topic while the rest of
every scenario is delivered through the real webhook and subscriber. At the end the
library's view equals every record, and can()/limit() answer from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

import statemachine
from functions.adapters.firestore_repository import FirestoreRepository
from functions.config import DEFAULT_ENTITLEMENTS_TOPIC
from functions.consumer import EntitlementsCache, ReadApiClient, follow
from functions.entrypoints.auth import READ_AUDIENCE, issue_token
from infra.local import demo
from infra.local.emulators import Emulators
from infra.local.scenarios import SCENARIOS, Scenario, build
from infra.local.stack import LocalStack, RunningFunction, free_port, start_function

pytestmark = pytest.mark.emulator
SECRET = "whsec_read_api_e2e_secret"
AUTH_SECRET = "read-api-e2e-internal-auth-key-0123456789"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[tuple[LocalStack, RunningFunction]]:
    env = {"STRIPE_WEBHOOK_SECRET": SECRET, "INTERNAL_AUTH_SECRET": AUTH_SECRET}
    with LocalStack(env=env, emulators=emulators) as running:
        api = start_function("entitlements_api", free_port(), running.env)
        try:
            yield running, api
        finally:
            api.stop()


def client(api: RunningFunction) -> ReadApiClient:
    return ReadApiClient(
        api.url, lambda: issue_token("svc-e2e", AUTH_SECRET, audience=READ_AUDIENCE)
    )


def new_subscription(project: str) -> str:
    """What a new downstream service creates: its own ordered subscription."""
    name = f"app-{uuid.uuid4().hex[:8]}"
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, name),
            "topic": f"projects/{project}/topics/{DEFAULT_ENTITLEMENTS_TOPIC}",
            "enable_message_ordering": True,
            "ack_deadline_seconds": 30,
        }
    )
    return name


def halves(played: list[Scenario]) -> tuple[dict[str, list], dict[str, list]]:  # type: ignore[type-arg]
    first = {s.customer_id: list(s.events[: len(s.events) // 2 + 1]) for s in played}
    rest = {s.customer_id: list(s.events[len(s.events) // 2 + 1 :]) for s in played}
    return first, rest


def wait_until_current(
    cache: EntitlementsCache, repo: FirestoreRepository, played: list[Scenario]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        behind = [
            s.customer_id
            for s in played
            if (r := repo.get_record(s.customer_id)) is not None
            and r.version > 0
            and ((held := cache.for_customer(s.customer_id)) is None or held.version < r.version)
        ]
        if not behind:
            return
        time.sleep(0.5)
    pytest.fail(f"consumer still behind for {behind}")


def test_a_cold_consumer_gets_every_account_then_stays_current(
    stack: tuple[LocalStack, RunningFunction],
) -> None:
    running, api = stack
    played = [build(n, customer_id=f"cus_cold_{n}", account_id=f"acct_cold_{n}") for n in SCENARIOS]
    first, rest = halves(played)
    repo = FirestoreRepository(running.project)

    # 1. The stream runs before the consumer exists.
    demo.play(running.webhook_url, SECRET, first)
    demo.wait_processed(repo, {e["id"] for events in first.values() for e in events})

    # 2. Cold start: subscribe first, then load the snapshot.
    cache = EntitlementsCache()
    stream = follow(running.project, new_subscription(running.project), cache)
    try:
        loaded = cache.load(client(api).every(page_size=4))
        known = {
            s.customer_id for s in played if (r := repo.get_record(s.customer_id)) and r.version
        }
        assert loaded >= len(known) and all(cache.for_customer(c) for c in known)

        # 3. The rest of every story arrives only through the stream.
        demo.play(running.webhook_url, SECRET, rest)
        demo.wait_processed(repo, {e["id"] for s in played for e in s.events})
        wait_until_current(cache, repo, played)
    finally:
        stream.cancel()

    by_account = 0
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        assert record is not None
        held = cache.for_customer(scenario.customer_id)
        if record.version == 0:
            assert held is None or held.version == 0
            continue
        assert held is not None
        expected = statemachine.current_entitlements(record)
        assert (held.version, held.access, held.entitlements) == (
            expected.version,
            expected.access,
            expected.entitlements,
        ), scenario.name
        account = scenario.account_id
        if held.account_id == account:
            by_account += 1
            for feature in ("slack_alerts", "read_only", "email_alerts"):
                assert cache.can(account, feature) == (
                    held.access.value != "none" and feature in expected.entitlements.features
                )
            assert cache.limit(account, "seats") == expected.entitlements.limits.seats
    # Most stories link their account at checkout; the rest stay keyed by customer only.
    assert by_account >= len(played) // 2


def test_the_read_api_agrees_with_the_record_over_http(
    stack: tuple[LocalStack, RunningFunction],
) -> None:
    running, api = stack
    scenario = build("checkout_active", customer_id="cus_http_read", account_id="acct_http_read")
    demo.play(running.webhook_url, SECRET, {scenario.customer_id: list(scenario.events)})
    repo = FirestoreRepository(running.project)
    demo.wait_processed(repo, {e["id"] for e in scenario.events})
    record = repo.get_record(scenario.customer_id)
    assert record is not None and record.version > 0

    reader = client(api)
    by_account = reader.account("acct_http_read")
    assert by_account == statemachine.current_entitlements(record)
    assert reader.customer("cus_http_read") == by_account
    assert reader.account("acct_never_seen") is None
    batch = reader.batch(["acct_http_read", "acct_never_seen"], ["cus_never_seen"])
    assert [e.customer_id for e in batch.entitlements] == ["cus_http_read"]
    assert batch.not_found.account_ids == ["acct_never_seen"]
    assert batch.not_found.customer_ids == ["cus_never_seen"]


def test_the_example_consumer_runs_as_the_readme_says(
    stack: tuple[LocalStack, RunningFunction],
) -> None:
    running, api = stack
    scenario = build("cancel_at_period_end", customer_id="cus_example", account_id="acct_example")
    first, rest = halves([scenario])
    repo = FirestoreRepository(running.project)
    demo.play(running.webhook_url, SECRET, first)
    demo.wait_processed(repo, {e["id"] for e in first[scenario.customer_id]})
    before = repo.get_record(scenario.customer_id)
    assert before is not None
    command = [sys.executable, "-m", "functions.consumer.example", "--project", running.project]
    command += ["--read-api", api.url, "--seconds", "8"]
    env = {**os.environ, **running.env}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("loaded ")
        demo.play(running.webhook_url, SECRET, rest)
        output = proc.stdout.read()
    assert proc.returncode == 0
    record = repo.get_record(scenario.customer_id)
    assert record is not None and record.version > before.version
    assert f"applied   cus_example v{record.version}" in output
    summary = next(line for line in output.splitlines() if line.startswith("acct_example"))
    assert f"v{record.version}" in summary and record.access.value in summary
