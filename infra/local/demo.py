"""`make demo`: the whole pipeline on local emulators, checked against expectations.

Plays every scenario of the generator through the signed HTTP webhook, with Stripe's
habits injected (duplicates, shuffled order), then prints each customer's final state
and the entitlement-changed messages received. Anomalies the state machine flags are
resolved the way on-call would, by reconciling against Stripe (a local server speaking
Stripe's wire format). Then plays 150 Stripe-simulator stories the same way and prints
agreement per kind of story (infra/local/demo_stories.py). Exits 0 only if every customer
ends as its scenario expects, every entitlement stream is versions 1..N, and every
simulator customer agrees with Stripe.
"""

from __future__ import annotations

import functools
import json
import os
import random
import secrets
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from functions.adapters.firestore_repository import FirestoreRepository
from functions.log import configure_logging
from infra.local import contract
from infra.local.observe import drain
from infra.local.scenarios import SCENARIOS, Scenario, build
from infra.local.signing import sign
from infra.local.stack import LocalStack
from infra.local.topology import OBSERVER_ENTITLEMENTS_SUBSCRIPTION
from schemas.documents import BillingRecord

Event = dict[str, Any]


def post(
    url: str, secret: str, event: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> int:
    body = json.dumps(event).encode()
    request = urllib.request.Request(  # noqa: S310 - the local stack's loopback URL
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, [secret], int(time.time())),
            **(headers or {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return int(response.status)


def play(url: str, secret: str, deliveries: Mapping[str, Sequence[Event]]) -> None:
    """Each customer's deliveries in sequence, customers in parallel (as Stripe does)."""
    errors: list[str] = []

    def run(customer: str, events: Sequence[Event]) -> None:
        for event in events:
            try:
                status = post(url, secret, event)
            except Exception as exc:  # reported below with the customer
                errors.append(f"{customer}: {event['id']}: {exc}")
                return
            if status != 200:
                errors.append(f"{customer}: {event['id']}: HTTP {status}")

    threads = [threading.Thread(target=run, args=item) for item in deliveries.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("webhook deliveries failed: " + "; ".join(errors[:5]))


def wait_processed(repo: FirestoreRepository, event_ids: set[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    remaining = set(event_ids)
    while remaining and time.monotonic() < deadline:
        remaining = {e for e in remaining if not repo.is_processed(e)}
        if remaining:
            time.sleep(0.25)
    if remaining:
        raise RuntimeError(f"{len(remaining)} events never processed, e.g. {sorted(remaining)[:3]}")


def outcome(record: BillingRecord | None) -> tuple[str, str, str | None]:
    if record is None:
        return ("missing", "none", None)
    plan = record.entitlements.plan if record.entitlements else None
    return (record.status, record.access.value, plan)


def expected_outcome(scenario: Scenario) -> tuple[str, str, str | None]:
    expected = scenario.expected
    return (expected.status, expected.access.value, expected.plan)


def shuffled_with_duplicates(scenario: Scenario, rng: random.Random) -> list[Event]:
    events = list(scenario.events)
    rng.shuffle(events)
    return events + rng.sample(events, k=min(2, len(events)))


def received_versions(project: str, quiet_seconds: float = 2.0) -> dict[str, dict[int, Any]]:
    versions: dict[str, dict[int, Any]] = defaultdict(dict)
    for message in drain(project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION, quiet_seconds):
        customer, version = message.attributes["customer_id"], int(message.attributes["version"])
        versions[customer][version] = json.loads(message.data)
    return versions


def reconcile_flagged(
    stack: LocalStack, repo: FirestoreRepository, flagged: list[Scenario]
) -> None:
    # Imported here: only needed when the state machine flagged something.
    from functions.adapters.firestore_audit import FirestoreAuditLog  # noqa: PLC0415
    from functions.adapters.pubsub_publisher import PubSubPublisher  # noqa: PLC0415
    from functions.adapters.stripe_gateway import SdkStripeGateway  # noqa: PLC0415
    from functions.services.apply import Applier  # noqa: PLC0415
    from functions.services.reconcile import ReconcileService  # noqa: PLC0415
    from functions.services.relay import OutboxRelay  # noqa: PLC0415
    from statemachine.decision import Policy  # noqa: PLC0415
    from tests.support.stripe_server import StripeServer  # noqa: PLC0415

    server = StripeServer().start()
    try:
        for scenario in flagged:
            if scenario.final_subscription:
                sub = scenario.final_subscription
                server.state.subscriptions[sub["id"]] = sub
        publisher = PubSubPublisher(stack.project)
        for scenario in flagged:
            relay = OutboxRelay(repo, publisher, "entitlement-changed")
            ReconcileService(
                Applier(repo, relay, marker_ttl_days=35),
                SdkStripeGateway("sk_test_demo", api_base=server.url),
                Policy(),
                audit=FirestoreAuditLog(stack.project),
                publisher=publisher,
                events_topic="stripe-events",
                clock=functools.partial(float, scenario.end_time),
            ).reconcile(scenario.customer_id)
    finally:
        server.stop()


def main() -> int:
    # Jobs and reconciles run in this process too: their INFO lines would interleave with
    # the tables (warnings and errors still show).
    configure_logging("WARNING")
    secret = f"whsec_demo{secrets.token_hex(16)}"
    rng = random.Random(20261123)  # noqa: S311 - a reproducible delivery order, not a secret
    played = [build(n, customer_id=f"cus_demo_{n}", account_id=f"acct_demo_{n}") for n in SCENARIOS]
    print(f"Starting emulators and functions; playing {len(played)} scenarios ...", flush=True)
    with LocalStack(env={"STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "WARNING"}) as stack:
        assert stack.emulators is not None
        os.environ.update(stack.emulators.env())  # this process reads Firestore too
        deliveries = {s.customer_id: shuffled_with_duplicates(s, rng) for s in played}
        total = sum(len(d) for d in deliveries.values())
        print(f"Posting {total} signed webhooks (shuffled, with duplicates) to {stack.webhook_url}")
        play(stack.webhook_url, secret, deliveries)
        repo = FirestoreRepository(stack.project)
        wait_processed(repo, {e["id"] for s in played for e in s.events})
        flagged = [
            s for s in played if outcome(repo.get_record(s.customer_id)) != expected_outcome(s)
        ]
        anomalies = {
            s.customer_id for s in played if (r := repo.get_record(s.customer_id)) and r.anomalies
        }
        if flagged:
            print(
                f"{len(flagged)} customers flagged by the state machine: reconciling against Stripe"
            )
            reconcile_flagged(stack, repo, flagged)
        versions = received_versions(stack.project)
        scenarios_ok = report(repo, played, versions, anomalies)
        # Imported here: the simulator lives in the checkout's test support.
        from infra.local.demo_stories import run_stories  # noqa: PLC0415

        stories_ok = run_stories(stack, secret, play, wait_processed)
        return scenarios_ok or stories_ok or check_stream_contract(stack.project)


def check_stream_contract(project: str) -> int:
    """Every message published since the scenario check, validated as a consumer would."""
    messages = drain(project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION, 2.0)
    broken = [
        problem
        for m in messages
        for problem in contract.violations(json.loads(m.data), m.attributes)
    ]
    print(
        f"\n{len(messages)} more entitlement-changed messages (stories, reconciles): "
        f"{len(broken)} break the v1 JSON Schema or disagree with their attributes."
    )
    for problem in broken[:10]:
        print(f"  {problem}")
    return 1 if broken or not messages else 0


def report(
    repo: FirestoreRepository,
    played: list[Scenario],
    versions: Mapping[str, Mapping[int, Any]],
    anomalies: set[str],
) -> int:
    header = (
        f"{'scenario':26} {'status':18} {'access':10} {'plan':9} {'versions':9} {'anomaly':8} ok"
    )
    print("\n" + header + "\n" + "-" * len(header))
    failures = 0
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        got = outcome(record)
        seen = sorted(versions.get(scenario.customer_id, {}))
        stream_ok = record is not None and seen == list(range(1, record.version + 1))
        last = versions.get(scenario.customer_id, {}).get(record.version) if record else None
        last_ok = (
            record is None
            or record.version == 0
            or (last is not None and (last["status"], last["access"]) == got[:2])
        )
        ok = got == expected_outcome(scenario) and stream_ok and last_ok
        failures += not ok
        print(
            f"{scenario.name:26} {got[0]:18} {got[1]:10} {got[2] or '-':9} "
            f"{('1..' + str(seen[-1])) if seen else '-':9} "
            f"{'yes' if scenario.customer_id in anomalies else '':8} {'OK' if ok else 'MISMATCH'}"
        )
    messages = sum(len(v) for v in versions.values())
    print(f"\n{messages} entitlement-changed versions received for {len(versions)} customers.")
    broken = contract.all_violations(p for v in versions.values() for p in v.values())
    print(f"{len(broken)} of them break the v1 JSON Schema{':' if broken else '.'}")
    for problem in broken[:10]:
        print(f"  {problem}")
    failures += len(broken)
    print(
        "PASS: every customer matches its scenario"
        if not failures
        else f"FAIL: {failures} mismatches"
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
