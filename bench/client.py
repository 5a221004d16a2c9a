"""A small keep-alive HTTP client: sequential latency runs and saturation with threads.

http.client rather than requests: the client shares the 2 cores with the servers it
measures, and the lighter it is, the less it flattens the differences between them.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

Request = tuple[bytes, dict[str, str]]


class Connection:
    def __init__(self, port: int, path: str = "/") -> None:
        self._port = port
        self._path = path
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        """One POST; returns (status, seconds until the whole response was read)."""
        all_headers = {"Content-Type": "application/json", **headers}
        for attempt in range(2):
            started = time.perf_counter()
            try:
                self._conn.request("POST", self._path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                response.read()
                return response.status, time.perf_counter() - started
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once.
                self._conn.close()
                self._conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=60)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class RunResult:
    latencies: list[float]
    statuses: dict[int, int]
    elapsed: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 300)


def _count(statuses: dict[int, int], status: int) -> None:
    statuses[status] = statuses.get(status, 0) + 1


def sequential(port: int, requests: Sequence[Request]) -> RunResult:
    conn = Connection(port)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    try:
        for body, headers in requests:
            status, seconds = conn.post(body, headers)
            latencies.append(seconds)
            _count(statuses, status)
    finally:
        conn.close()
    return RunResult(latencies, statuses, time.perf_counter() - started)


def saturate(port: int, requests: Sequence[Request], concurrency: int) -> RunResult:
    """Closed loop: `concurrency` clients each send their share back to back."""
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def worker(share: Sequence[Request]) -> None:
        conn = Connection(port)
        mine: list[tuple[int, float]] = []
        try:
            for body, headers in share:
                mine.append(conn.post(body, headers))
        finally:
            conn.close()
        with lock:
            for status, seconds in mine:
                latencies.append(seconds)
                _count(statuses, status)

    shares = [requests[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker, share) for share in shares]:
            future.result()
    return RunResult(latencies, statuses, time.perf_counter() - started)
