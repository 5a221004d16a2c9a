"""The read API at a fixed offered load: p50/p95/p99 of GET /v1/entitlements/{account}.

Open loop: request i is due at start + i/rate and its latency counts from when it was due,
so a server that falls behind shows it (no coordinated omission). The floor beside it is
the same number of Firestore document reads made directly from this process.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from google.cloud import firestore

from bench.stats import summarize_ms
from functions.entrypoints.auth import READ_AUDIENCE, issue_token
from infra.local.stack import free_port, start_function
from schemas.documents import AccountLink, BillingRecord
from schemas.entitlements import AccessLevel, Entitlements, Limits

AUTH_SECRET = "bench-read-api-internal-auth-key-0123456789"
LIMITS = Limits(tables=25, custom_rules=0, seats=10, alert_channels=3, api_requests_per_day=0)


def seed(project: str, customers: int) -> list[str]:
    client = firestore.Client(project=project)
    accounts = []
    for start in range(0, customers, 400):
        batch = client.batch()
        for n in range(start, min(start + 400, customers)):
            customer, account = f"cus_read{n:06d}", f"acct_read{n:06d}"
            record = BillingRecord(
                customer_id=customer,
                account_id=account,
                status="active",
                version=3,
                access=AccessLevel.FULL,
                entitlements=Entitlements(plan="team", features=("slack_alerts",), limits=LIMITS),
                updated_at=1_700_000_000,
            )
            link = AccountLink(account_id=account, customer_id=customer, linked_at=1)
            batch.set(
                client.collection("customers").document(customer), record.model_dump(mode="json")
            )
            batch.set(client.collection("accounts").document(account), link.model_dump(mode="json"))
            accounts.append(account)
        batch.commit()
    return accounts


def _open_loop(send: Any, targets: list[str], rate: float, threads: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = iter(range(len(targets)))
    start = time.perf_counter() + 0.2

    def worker() -> None:
        state: dict[str, Any] = {}
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            status = send(state, targets[i])
            finished = time.perf_counter()
            with lock:
                latencies.append(finished - due)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        **summarize_ms(latencies),
        "offered_per_second": rate,
        "achieved_per_second": round(len(latencies) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def run(env: Mapping[str, str], project: str, rate: float, seconds: float) -> dict[str, Any]:
    accounts = seed(project, 500)
    port = free_port()
    running = start_function(
        "entitlements_api",
        port,
        {**env, "GOOGLE_CLOUD_PROJECT": project, "INTERNAL_AUTH_SECRET": AUTH_SECRET},
    )
    rng = random.Random(7)
    targets = [rng.choice(accounts) for _ in range(int(rate * seconds))]
    token = issue_token("bench", AUTH_SECRET, audience=READ_AUDIENCE, ttl_seconds=300)
    headers = {"Authorization": f"Bearer {token}"}

    def get(state: dict[str, Any], account: str) -> int:
        conn = state.setdefault("conn", http.client.HTTPConnection("127.0.0.1", port, timeout=30))
        conn.request("GET", f"/v1/entitlements/{account}", headers=headers)
        response = conn.getresponse()
        response.read()
        return int(response.status)

    def direct(state: dict[str, Any], account: str) -> int:
        client = state.setdefault("client", firestore.Client(project=project))
        link = client.collection("accounts").document(account).get()
        customer = (link.to_dict() or {})["customer_id"]
        return 200 if client.collection("customers").document(customer).get().exists else 404

    try:
        _open_loop(get, targets[: int(rate)], rate, threads=16)  # warm: connections, caches
        ours = _open_loop(get, targets, rate, threads=16)
        floor = _open_loop(direct, targets, rate, threads=16)
    finally:
        running.stop()
    return {"ours": ours, "direct_firestore_reads": floor, "customers": len(accounts)}
