"""Scenarios 1 and 2: webhook ack cost by payload size, and throughput at saturation.

Every request carries a new event id (and, for the inline baseline, a new customer), so
the inline baseline always runs a full first-time transaction and never the cheap
duplicate path. Signatures are made just before each run, inside Stripe's tolerance.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from bench import proc
from bench.client import Request, RunResult, saturate, sequential
from bench.payloads import encode, padded_invoice_event
from bench.stats import summarize_ms
from infra.local.signing import sign

SIZES_KB = (1, 10, 60, 500)


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int


def signed_requests(count: int, size_kb: int, secret: str) -> list[Request]:
    tag = uuid.uuid4().hex[:8]
    now = int(time.time())
    out: list[Request] = []
    for n in range(count):
        event = padded_invoice_event(
            f"evt_b{tag}{n:05d}", f"cus_b{tag}{n:05d}", size_kb * 1024, now
        )
        body = encode(event)
        out.append((body, {"Stripe-Signature": sign(body, [secret], now)}))
    return out


@dataclass
class CostRun:
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    errors: int = 0

    def add(self, result: RunResult, cpu: float) -> None:
        self.latencies += result.latencies
        self.cpu_seconds += cpu
        self.errors += result.errors

    def summary(self) -> dict[str, float]:
        data = summarize_ms(self.latencies)
        data["cpu_ms_per_request"] = round(self.cpu_seconds * 1000 / len(self.latencies), 3)
        data["errors"] = float(self.errors)
        return data


def _measured(server: Server, requests: list[Request]) -> tuple[RunResult, float]:
    cpu_before = proc.cpu_seconds(server.pid)
    result = sequential(server.port, requests)
    return result, proc.cpu_seconds(server.pid) - cpu_before


def ack_cost(
    servers: list[Server], size_kb: int, count: int, secret: str, chunks: int = 4
) -> dict[str, dict[str, float]]:
    """Sequential requests, servers alternating chunk by chunk so drift hits all alike."""
    runs = {server.name: CostRun() for server in servers}
    per_chunk = max(1, count // chunks)
    for server in servers:
        sequential(server.port, signed_requests(5, size_kb, secret))  # warm the code path
    for _ in range(chunks):
        for server in servers:
            result, cpu = _measured(server, signed_requests(per_chunk, size_kb, secret))
            runs[server.name].add(result, cpu)
    return {name: run.summary() for name, run in runs.items()}


def throughput(
    server: Server, size_kb: int, count: int, concurrency: int, secret: str
) -> dict[str, float]:
    requests = signed_requests(count, size_kb, secret)
    saturate(server.port, signed_requests(concurrency * 4, size_kb, secret), concurrency)
    cpu_before = proc.cpu_seconds(server.pid)
    result = saturate(server.port, requests, concurrency)
    cpu = proc.cpu_seconds(server.pid) - cpu_before
    data = summarize_ms(result.latencies)
    data.update(
        requests_per_second=round(result.throughput, 1),
        cpu_ms_per_request=round(cpu * 1000 / len(result.latencies), 3),
        errors=float(result.errors),
        concurrency=float(concurrency),
    )
    return data
