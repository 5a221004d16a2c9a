"""Scenarios 1 and 2: webhook ack cost by payload size, and throughput at saturation.

Every request carries a new event id (and, for the inline baseline, a new customer), so
the inline baseline always runs a full first-time transaction and never the cheap
duplicate path. Signatures are made just before each run, inside Stripe's tolerance.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import proc
from bench.client import Request, RunResult, saturate, sequential
from bench.payloads import encode, padded_invoice_event
from bench.stats import summarize_ms
from infra.local.signing import sign

SIZES_KB = (1, 10, 60, 500)
# Requests per server before each measured size, so each size starts on a warm path.
WARM_UP = 50


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int
    log: Path | None = None  # its JSON log, read for fields the server measured itself


def _log_offset(server: Server) -> int:
    return server.log.stat().st_size if server.log is not None and server.log.exists() else 0


def publish_times(server: Server, since: int) -> list[float]:
    """Seconds our webhook spent in Pub/Sub's publish (its `publish_ms` log field)."""
    if server.log is None:
        return []
    with server.log.open("rb") as fh:
        fh.seek(since)
        lines = fh.read().splitlines()
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("outcome") == "published" and "publish_ms" in entry:
            out.append(float(entry["publish_ms"]) / 1000)
    return out


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
class _Load:
    """What one server's chunks added up to: latencies, wall time, errors, CPU by process."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, result: RunResult, before: dict[str, float], after: dict[str, float]) -> None:
        self.latencies += result.latencies
        self.elapsed += result.elapsed
        self.errors += result.errors
        for key, value in after.items():
            self.cpu[key] = self.cpu.get(key, 0.0) + value - before[key]

    def summary(self) -> dict[str, float]:
        n = len(self.latencies)
        data = summarize_ms(self.latencies)
        data["cpu_ms_per_request"] = round(self.cpu["server"] * 1000 / n, 3)
        data["errors"] = float(self.errors)
        return data


def _process_cpu(pids: dict[str, int], client: bool = False) -> dict[str, float]:
    cpu = {key: proc.cpu_seconds(pid) for key, pid in pids.items()}
    if client:
        # The bench client runs in this process: its threads are the load generator.
        cpu["client"] = time.process_time()
    return cpu


def warm_up(servers: list[Server], secret: str, requests: int = 400) -> None:
    """Once per run, before anything is measured: the emulators are JVMs whose JIT needs
    a few hundred calls before their latencies settle (the first size measured would
    otherwise pay for it: 1 KB acks came out slower than 60 KB ones)."""
    for server in servers:
        sequential(server.port, signed_requests(requests, 1, secret))


def ack_cost(
    servers: list[Server], size_kb: int, count: int, secret: str, chunks: int = 4
) -> dict[str, dict[str, float]]:
    """Sequential requests, servers alternating chunk by chunk so drift hits all alike."""
    runs = {server.name: _Load() for server in servers}
    per_chunk = max(1, count // chunks)
    for server in servers:
        sequential(server.port, signed_requests(WARM_UP, size_kb, secret))
    offsets = {server.name: _log_offset(server) for server in servers}
    for _ in range(chunks):
        for server in servers:
            requests = signed_requests(per_chunk, size_kb, secret)
            before = _process_cpu({"server": server.pid})
            result = sequential(server.port, requests)
            runs[server.name].add(result, before, _process_cpu({"server": server.pid}))
    summaries = {name: run.summary() for name, run in runs.items()}
    for server in servers:
        # The floor under our ack: answering only after Pub/Sub confirmed means no ack
        # can be faster than the publish round trip it waits for.
        publish = publish_times(server, offsets[server.name])
        if publish:
            stats = summarize_ms(publish)
            summaries[server.name]["publish_p50_ms"] = stats["p50_ms"]
            summaries[server.name]["publish_p99_ms"] = stats["p99_ms"]
    return summaries


def throughput(
    servers: list[Server],
    size_kb: int,
    count: int,
    concurrency: int,
    secret: str,
    emulator_pids: dict[str, int] | None = None,
    chunks: int = 4,
) -> dict[str, dict[str, float]]:
    """Closed-loop saturation, servers alternating chunk by chunk (drift hits all alike).

    Besides req/s, it splits the CPU each request cost the machine by process: server,
    emulators and the load-generating client all share the same cores, so what a
    request costs all of them together is what bounds the rate.
    """
    loads = {server.name: _Load() for server in servers}
    for server in servers:
        saturate(server.port, signed_requests(concurrency * 4, size_kb, secret), concurrency)
    for _ in range(chunks):
        for server in servers:
            requests = signed_requests(max(1, count // chunks), size_kb, secret)
            pids = {"server": server.pid, **(emulator_pids or {})}
            before = _process_cpu(pids, client=True)
            result = saturate(server.port, requests, concurrency)
            loads[server.name].add(result, before, _process_cpu(pids, client=True))
    out: dict[str, dict[str, float]] = {}
    for name, load in loads.items():
        n = len(load.latencies)
        data = load.summary()
        data.update(
            requests_per_second=round(n / load.elapsed, 1),
            machine_cpu_ms_per_request=round(sum(load.cpu.values()) * 1000 / n, 3),
            concurrency=float(concurrency),
        )
        for key, seconds in load.cpu.items():
            if key != "server":
                data[f"cpu_ms_per_request_{key}"] = round(seconds * 1000 / n, 3)
        out[name] = data
    return out
