"""`make demo`, second part: Stripe-simulator stories through the signed webhook.

150 random customer stories (ten of each kind) are played on the billing simulator
(tests/support/simulator); every event our domain handles is posted to the local stack's
webhook, signed, each customer's in Stripe's order with some redelivered, customers in
parallel. The subscriber applies them through Pub/Sub push as in production. Then the
scheduled jobs run in-process at the simulated end: re-evaluation, and the every-minute
reconcile of open anomalies against the simulator served over HTTP. Each customer is
judged against what Stripe's events say (tests/support/differential.py): agreement per
kind of story is printed, and any disagreement fails the demo.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from functions.adapters.firestore_audit import FirestoreAuditLog
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.services.apply import Applier
from functions.services.reconcile import ReconcileService
from functions.services.reevaluate import reevaluate_due
from functions.services.relay import OutboxRelay
from infra.local.stack import LocalStack
from schemas.documents import BillingRecord
from schemas.stripe import Subscription
from statemachine.decision import Policy

STORIES = 150
SEED = 20261202
Event = dict[str, Any]


def _simulator() -> Any:
    try:
        from tests.support import differential  # noqa: PLC0415 - checkout-only test support
    except ImportError as exc:  # the installed wheel ships no tests
        raise SystemExit(f"make demo needs the checkout's tests/support: {exc}") from exc
    return differential


def run_stories(
    stack: LocalStack,
    secret: str,
    play: Callable[[str, str, dict[str, list[Event]]], None],
    wait_processed: Callable[[FirestoreRepository, set[str]], None],
) -> int:
    diff = _simulator()
    from tests.support.stripe_server import StripeServer  # noqa: PLC0415

    w = diff.world(SEED, STORIES, after_retries="unpaid")
    rng = random.Random(SEED)  # noqa: S311 - a reproducible delivery plan, not a secret
    deliveries: dict[str, list[Event]] = defaultdict(list)
    for _, event in diff.deliveries(w.sim.events, rng, shuffled=False):
        customer = event["data"]["object"].get("customer")
        deliveries[customer].append(event)
        if rng.random() < 0.05:
            deliveries[customer].append(event)  # Stripe delivers at least once
    total = sum(len(d) for d in deliveries.values())
    print(
        f"\nSimulator: {STORIES} stories, posting {total} signed webhooks for {len(deliveries)} "
        "customers ...",
        flush=True,
    )
    play(stack.webhook_url, secret, dict(deliveries))
    repo = FirestoreRepository(stack.project)
    wait_processed(repo, {e["id"] for events in deliveries.values() for e in events})

    server = StripeServer().start()
    try:
        w.sim.load_into(server)
        return _judge(diff, w, stack, repo, server.url)
    finally:
        server.stop()


def _judge(diff: Any, w: Any, stack: LocalStack, repo: FirestoreRepository, api_base: str) -> int:
    policy = Policy()
    publisher = PubSubPublisher(stack.project)
    applier = Applier(repo, OutboxRelay(repo, publisher, "entitlement-changed"), marker_ttl_days=35)
    end = w.sim.now + diff.TICK
    end -= end % diff.TICK
    reevaluate_due(applier, policy, end)
    kinds = {r.customer_id: r.story.kind for r in w.runs}
    flagged = Counter(kinds[c] for c in repo.with_open_anomalies(10_000) if c in kinds)
    reconciler = ReconcileService(
        applier,
        SdkStripeGateway("sk_test_demo", api_base=api_base),
        policy,
        audit=FirestoreAuditLog(stack.project),
        publisher=publisher,
        events_topic="stripe-events",
        clock=lambda: float(end),
    )
    job = reconciler.reconcile_anomalies(limit=10_000)

    class Stack:
        def record(self, customer_id: str) -> BillingRecord | None:
            return repo.get_record(customer_id)

        def reconcile(
            self, record: BillingRecord, sub: Subscription | None, now: int
        ) -> BillingRecord:
            reconciler.reconcile(record.customer_id)
            return repo.get_record(record.customer_id) or record

    report = diff.Report()
    oracle = diff.Oracle(policy, w.composition)
    for event in w.sim.events:
        oracle.feed(event)
    diff.judge(w, Stack(), policy, oracle, end, report)
    print(f"\n{'story kind':22} {'stories':>7} {'agree':>6} {'anomaly, reconciled':>20}")
    for kind in sorted(report.stories):
        agreed = report.agreed[kind] + report.anomalies[kind]
        print(f"{kind:22} {report.stories[kind]:7} {agreed:6} {flagged[kind]:20}")
    print(f"anomaly job: {job['resolved']} resolved, {job['unresolved']} left for on-call")
    for line in report.disagreements[:10]:
        print("DISAGREES:", line)
    ok = not report.disagreements
    print(
        "PASS: every simulator customer agrees with Stripe"
        if ok
        else f"FAIL: {len(report.disagreements)} customers disagree with Stripe"
    )
    return 0 if ok else 1
