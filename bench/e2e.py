"""Scenario 4: webhook 200 -> entitlement-changed received, at a fixed offered load.

The whole pipeline runs as deployed, on the emulators: Stripe-signed POST to our webhook
(functions-framework), Pub/Sub push to our subscriber (functions-framework), the outbox
relay publishing entitlement-changed, and an observer subscription we pull from. Load is
open loop: requests leave on a fixed schedule whether or not earlier ones have answered.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient

from bench import proc
from bench.client import Connection
from bench.events import customer_story
from bench.payloads import encode
from bench.stats import summarize_ms
from infra.local.emulators import Emulators
from infra.local.signing import sign
from infra.local.stack import SUBSCRIBER_TARGET, LocalStack
from infra.local.topology import OBSERVER_ENTITLEMENTS_SUBSCRIPTION

DRAIN_SECONDS = 30.0


class Arrivals:
    """Receive time of each causing event id, from a streaming pull on the observer."""

    def __init__(self, project: str) -> None:
        self._client = SubscriberClient()
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        path = self._client.subscription_path(project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION)
        self._future = self._client.subscribe(path, callback=self._on_message)

    def _on_message(self, message: Any) -> None:
        now = time.perf_counter()
        event_id = message.attributes.get("causing_event_id", "")
        with self._lock:
            self._seen.setdefault(event_id, now)
        message.ack()

    def get(self, event_id: str) -> float | None:
        with self._lock:
            return self._seen.get(event_id)

    def count(self, event_ids: set[str]) -> int:
        with self._lock:
            return len(event_ids & self._seen.keys())

    def close(self) -> None:
        self._future.cancel()
        self._client.close()


def run(
    emulators: Emulators, env: dict[str, str], project: str, rate: float, seconds: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """LocalStack (provisioned topology, webhook, subscriber) on the bench's emulators."""
    with LocalStack(env=dict(env), project=project, emulators=emulators) as stack:
        webhook = stack.webhook
        subscriber = next(f for f in stack.functions if f.target == SUBSCRIBER_TARGET)
        result = measure(webhook.port, env["STRIPE_WEBHOOK_SECRET"], project, rate, seconds)
        rss = {
            "subscriber function (e2e)": proc.peak_rss_mb(subscriber.proc.pid),
            "webhook function (e2e)": proc.peak_rss_mb(webhook.proc.pid),
        }
    return result, rss


def measure(port: int, secret: str, project: str, rate: float, seconds: float) -> dict[str, Any]:
    arrivals = Arrivals(project)
    try:
        _warm(port, secret, arrivals)
        acked, statuses, elapsed = _offer(port, secret, rate, seconds)
        expected = {event_id for event_id, status in statuses.items() if status == 200}
        deadline = time.monotonic() + DRAIN_SECONDS
        while arrivals.count(expected) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.2)
        from_ack, from_send = [], []
        for event_id in expected:
            received = arrivals.get(event_id)
            if received is not None:
                from_ack.append(received - acked[event_id][1])
                from_send.append(received - acked[event_id][0])
    finally:
        arrivals.close()
    summary = summarize_ms(from_ack) if from_ack else {}
    return {
        **summary,
        "offered_per_second": rate,
        "achieved_per_second": round(len(statuses) / elapsed, 2) if elapsed else 0.0,
        "sent": len(statuses),
        "acked_200": len(expected),
        "received": len(from_ack),
        "from_request_start": summarize_ms(from_send) if from_send else {},
        "latencies_ms": [round(s * 1000, 2) for s in sorted(from_ack)],
    }


def _request(secret: str, tag: str) -> tuple[str, bytes, dict[str, str]]:
    # A first subscription for a new customer: always an entitlement change.
    event = customer_story(f"cus_e{tag}", int(time.time()) - 60, tag)[0]
    body = encode(event)
    return event["id"], body, {"Stripe-Signature": sign(body, [secret], int(time.time()))}


def _warm(port: int, secret: str, arrivals: Arrivals) -> None:
    """A few events through the whole pipeline before measuring (imports, channels)."""
    conn = Connection(port)
    ids = set()
    for _ in range(3):
        event_id, body, headers = _request(secret, uuid.uuid4().hex[:10])
        conn.post(body, headers)
        ids.add(event_id)
    conn.close()
    deadline = time.monotonic() + DRAIN_SECONDS
    while arrivals.count(ids) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _offer(
    port: int, secret: str, rate: float, seconds: float
) -> tuple[dict[str, tuple[float, float]], dict[str, int], float]:
    total = int(rate * seconds)
    local = threading.local()
    acked: dict[str, tuple[float, float]] = {}
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def send(event_id: str, body: bytes, headers: dict[str, str]) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = Connection(port)
        sent = time.perf_counter()
        status, _ = conn.post(body, headers)
        done = time.perf_counter()
        with lock:
            acked[event_id] = (sent, done)
            statuses[event_id] = status

    requests = [_request(secret, uuid.uuid4().hex[:10]) for _ in range(total)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for n, request in enumerate(requests):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, *request)
    return acked, statuses, time.perf_counter() - started
