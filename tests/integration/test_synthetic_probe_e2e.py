"""The synthetic probe through the whole local stack, as the scheduler runs it.

A signed synthetic event goes in at the webhook's URL, crosses Pub/Sub push, the real
subscriber, Firestore and the relay, and comes back as an entitlement-changed message
marked synthetic on the probe's own subscription; the latency is logged as
`probe_completed`. Consumers drop the message, and the probe customer stays out of the
read API's listing and of reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from functions.adapters.firestore_audit import FirestoreAuditLog
from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.probe_io import HttpWebhookPoster, PubSubProbeInbox
from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.config import DEFAULT_PROBE_SUBSCRIPTION
from functions.consumer import Applied, EntitlementsCache
from functions.services.apply import Applier
from functions.services.entitlements_read import EntitlementReader
from functions.services.probe import Probe, current_plan
from functions.services.reconcile import ReconcileService
from functions.services.relay import OutboxRelay
from infra.local.emulators import Emulators
from infra.local.stack import LocalStack
from statemachine.decision import Policy
from statemachine.synthetic import PROBE_CUSTOMER_ID
from tests.integration.subscriber_support import entitlements
from tests.support.stripe_server import StripeServer

pytestmark = pytest.mark.emulator
SECRET = "whsec_probe_e2e_secret"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[LocalStack]:
    with LocalStack(env={"STRIPE_WEBHOOK_SECRET": SECRET}, emulators=emulators) as running:
        yield running


def probe_for(stack: LocalStack, secret: str = SECRET, timeout: float = 30.0) -> Probe:
    repo = FirestoreRepository(stack.project)
    return Probe(
        HttpWebhookPoster(stack.webhook_url),
        PubSubProbeInbox(stack.project, DEFAULT_PROBE_SUBSCRIPTION),
        current_plan(repo),
        [secret],
        timeout=timeout,
    )


def test_probe_round_trips_and_is_invisible_to_consumers(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = probe_for(stack)
    results = [probe.run() for _ in range(3)]  # within a second or two, on purpose
    assert [r.stage for r in results] == ["completed"] * 3, [r.detail for r in results]
    # Our JSON lines go to stdout, or stderr after a CLI test routed them there.
    captured = capsys.readouterr()
    text = captured.out + "\n" + captured.err
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    completed = [line for line in lines if line.get("message") == "probe_completed"]
    assert [line["latency_ms"] for line in completed] == [r.latency_ms for r in results]
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in results)

    repo = FirestoreRepository(stack.project)
    record = repo.get_record(PROBE_CUSTOMER_ID)
    # Three runs, three plan switches: three versions (created, then two updates).
    assert record is not None and record.version == 3 and record.status == "active"

    # What every consumer sees: marked synthetic, and the library drops it.
    probe_messages = [m for m in entitlements(stack.project) if m.customer_id == PROBE_CUSTOMER_ID]
    assert sorted(m.version for m in probe_messages) == [1, 2, 3]
    cache = EntitlementsCache()
    for message in probe_messages:
        assert message.attributes["synthetic"] == "true"
        assert json.loads(message.data)["customer_id"] == PROBE_CUSTOMER_ID
        assert cache.apply_message(message.data, message.attributes) is Applied.SYNTHETIC
    assert cache.customers() == 0

    # Never listed, never reconciled.
    listed = EntitlementReader(repo).page(None, 1000).entitlements
    assert PROBE_CUSTOMER_ID not in {e.customer_id for e in listed}
    server = StripeServer().start()
    try:
        publisher = PubSubPublisher(stack.project)
        reconciler = ReconcileService(
            Applier(repo, OutboxRelay(repo, publisher, "entitlement-changed"), marker_ttl_days=35),
            SdkStripeGateway("sk_test_local", api_base=server.url),
            Policy(),
            audit=FirestoreAuditLog(stack.project),
            publisher=publisher,
            events_topic="stripe-events",
        )
        assert PROBE_CUSTOMER_ID not in reconciler.all_customers()
        with pytest.raises(ValueError, match="synthetic probe"):
            reconciler.reconcile(PROBE_CUSTOMER_ID)
        assert not [r for r in server.requests if PROBE_CUSTOMER_ID in str(r)]
    finally:
        server.stop()


def test_a_broken_pipeline_fails_the_probe_at_the_stage_that_broke(stack: LocalStack) -> None:
    # A webhook that does not know the probe's secret: what a rotated-on-one-side secret does.
    result = probe_for(stack, secret="whsec_not_the_webhooks", timeout=5).run()
    assert (result.ok, result.stage) == (False, "webhook")
    assert "400" in result.detail
