"""Issue 17, rows 2 and 3 on the real server: huge, lying and slow senders.

The webhook runs as the local stack runs it (infra/local/serve.py: functions-framework's
app on gunicorn with a per-request read deadline) against the Pub/Sub emulator. Clients
are raw sockets, so a body can be larger than declared, shorter than declared, chunked,
or trickled a byte a second.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import requests

from infra.local.emulators import Emulators, free_port
from infra.local.stack import ROOT, RunningFunction, start_function
from infra.local.topology import OBSERVER_STRIPE_EVENTS_SUBSCRIPTION
from tests.conftest import ProvisionedProject, provision_project
from tests.support.pubsub import pull_all
from tests.support.signing import encode, signed_headers, stripe_event

pytestmark = pytest.mark.emulator

SECRET = "whsec_hostile" + "h" * 20
LIMIT = 1_048_576  # the deployed WEBHOOK_MAX_BODY_BYTES
READ_TIMEOUT = 2.0
THREADS = 8
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def project(emulators: Emulators) -> ProvisionedProject:
    return provision_project(emulators)


def _env(project: ProvisionedProject) -> dict[str, str]:
    return {
        **project.env,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_MAX_BODY_BYTES": str(LIMIT),
        "REQUEST_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "THREADS": str(THREADS),
    }


@pytest.fixture(scope="module")
def webhook(project: ProvisionedProject) -> Iterator[RunningFunction]:
    running = start_function("stripe_webhook", free_port(), _env(project))
    yield running
    running.stop()


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children  # functions-framework's default: one worker
    return int(children[0])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def signed_post(fn: RunningFunction, *, customer: str = "cus_hostile") -> requests.Response:
    body = encode(stripe_event(customer=customer))
    return requests.post(fn.url, data=body, headers=signed_headers(body, [SECRET]), timeout=30)


def raw_exchange(
    port: int, head: bytes, body: Iterable[bytes], *, timeout: float = 30
) -> tuple[int | None, bytes, float]:
    """Send `head` then `body` from a thread; read the answer. (status, raw, seconds)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    started = time.monotonic()

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed before taking it all: the point

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    raw = b""
    try:
        while not _complete(raw):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    except (TimeoutError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=10)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None
    return status, raw, elapsed


def _complete(raw: bytes) -> bool:
    headers, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in headers.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def head(port: int, extra: str) -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n").encode()


def megabytes(total: int, chunked: bool = False) -> Iterator[bytes]:
    block = b"x" * MIB
    for _ in range(total // MIB):
        yield (b"%x\r\n" % len(block) + block + b"\r\n") if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_row2_a_30_mb_body_is_413_and_worker_memory_does_not_grow_by_it(
    webhook: RunningFunction, chunked: bool
) -> None:
    assert signed_post(webhook).status_code == 200  # clients built, caches warm
    worker = worker_pid(webhook.proc.pid)
    before = rss_bytes(worker)
    size = 30 * MIB
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    status, raw, elapsed = raw_exchange(
        webhook.port, head(webhook.port, framing), megabytes(size, chunked)
    )
    grown = rss_bytes(worker) - before
    assert status == 413, raw[:300]
    assert b'{"error": "too_large"}' in raw
    # Before: the framework buffered the whole body, 128 -> 336 MiB. A read of limit+1
    # bytes plus allocator noise stays far under the body's size.
    assert grown < 8 * MIB, f"worker RSS grew by {grown / MIB:.1f} MiB"
    assert elapsed < 10
    assert signed_post(webhook).status_code == 200  # and it still serves


def test_row2_a_declared_length_over_the_limit_with_10_bytes_sent_is_413_at_once(
    webhook: RunningFunction,
) -> None:
    hdr = head(webhook.port, f"Content-Length: {2 * MIB}\r\n")
    status, raw, elapsed = raw_exchange(webhook.port, hdr, [b"0123456789"], timeout=15)
    assert status == 413, raw[:300]
    assert elapsed < 2  # answered from Content-Length, before any read


def test_row2_a_declared_length_under_the_limit_never_sent_is_408_within_the_read_deadline(
    webhook: RunningFunction,
) -> None:
    body = encode(stripe_event())
    hdr = head(webhook.port, f"Content-Length: {len(body) + 500}\r\n" + _signature(body))
    status, raw, elapsed = raw_exchange(webhook.port, hdr, [body], timeout=15)
    assert status == 408, raw[:300]
    assert b'{"error": "body_timeout"}' in raw
    assert READ_TIMEOUT - 0.5 < elapsed < READ_TIMEOUT + 3
    lines = [line for line in webhook.logs().splitlines() if '"body_timeout"' in line]
    assert lines and '"webhook_request"' in lines[-1]


def _signature(body: bytes) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in signed_headers(body, [SECRET]).items())


class SlowSenders:
    """`count` connections each sending a request head one byte a second, reconnecting
    whenever the server cuts one off: a slowloris that keeps up the pressure."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.cut_off = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> SlowSenders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    cut = self._trickle(sock)
            except OSError:
                cut = True
            self.cut_off += cut

    def _trickle(self, sock: socket.socket) -> bool:
        """Whether the server ended the connection (else the test stopped us)."""
        for byte in head(self.port, "X-Slow: " + "a" * 10_000 + "\r\n"):
            if self._stop.is_set():
                return False
            sock.sendall(bytes([byte]))
            self._stop.wait(1.0)
            if select.select([sock], [], [], 0)[0]:
                return True  # answered (408) or closed: connect again at once
        return False


def _legitimate_latency(fn: RunningFunction, senders: int) -> tuple[float, int | None]:
    """Seconds until a signed request is answered while `senders` trickle, and its status."""
    with SlowSenders(fn.port, senders) as slow:
        # Every worker thread is busy with a slow sender by now, and the request arrives
        # mid-way between two cut-offs, not in the gap while they reconnect.
        time.sleep(READ_TIMEOUT * 1.5)
        started = time.monotonic()
        try:
            status: int | None = signed_post(fn, customer="cus_legit").status_code
        except requests.Timeout:
            status = None
        latency = time.monotonic() - started
    assert slow.cut_off >= senders  # each was cut off at least once: the deadline acted
    return latency, status


def test_row3_with_slow_senders_on_every_thread_a_signed_request_is_served_in_seconds(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    pull_all(project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=None, deadline=2)
    latency, status = _legitimate_latency(webhook, THREADS + 2)
    print(f"legitimate request answered in {latency:.2f}s")
    assert status == 200
    # Queued behind at most two rounds of slow senders being cut off at the deadline.
    assert latency < 2 * READ_TIMEOUT + 3, f"{latency:.1f}s"
    received = pull_all(project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=1)
    assert [m.ordering_key for m in received] == ["cus_legit"]
    assert '"request_read_timeout"' in webhook.logs()


def test_row3_the_stock_launcher_is_starved_by_the_same_senders(
    project: ProvisionedProject,
) -> None:
    # Shows the row-3 test can fail: `python -m functions_framework` with the same
    # threads, no read deadline. The legitimate request gets no answer in 10 s.
    port = free_port()
    env = _env(project)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "functions_framework", "--target", "stripe_webhook"),
            *("--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        with SlowSenders(port, THREADS + 2):
            time.sleep(2)
            body = encode(stripe_event(customer="cus_starved"))
            with pytest.raises(requests.Timeout):
                requests.post(
                    f"http://127.0.0.1:{port}/",
                    data=body,
                    headers=signed_headers(body, [SECRET]),
                    timeout=10,
                )
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def _posted(fn: RunningFunction, body: bytes) -> requests.Response:
    return requests.post(fn.url, data=body, headers=signed_headers(body, [SECRET]), timeout=30)


def test_row4_and_row11_signed_hostile_envelopes_get_400s_on_the_real_server(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    pull_all(project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=None, deadline=2)
    deep = stripe_event(event_id="evt_deep10000")
    deep["data"]["object"]["description"] = "PLACEHOLDER"
    deep_body = encode(deep).replace(b'"PLACEHOLDER"', b"[" * 10_000 + b"]" * 10_000)
    long_customer = encode(stripe_event(customer="cus_" + "x" * 1100))
    long_type = encode(stripe_event("customer.subscription." + "y" * 1100))
    cases = [
        (deep_body, {"error": "invalid_json"}),
        (long_customer, {"error": "field_too_long", "field": "customer_id"}),
        (long_type, {"error": "field_too_long", "field": "event_type"}),
    ]
    for body, answer in cases:
        response = _posted(webhook, body)
        assert (response.status_code, response.json()) == (400, answer)
    # 1,024 bytes is still within Pub/Sub's limit: published, with it as the ordering key.
    at_limit = "c" * 1024
    assert _posted(webhook, encode(stripe_event(customer=at_limit))).status_code == 200
    received = pull_all(project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=1)
    assert [m.ordering_key for m in received] == [at_limit]
    # Each refusal has its request log line (a 500 used to have none).
    logged = [
        (line["status_code"], line.get("reason"), line.get("field"))
        for line in map(json.loads, _json_lines(webhook))
        if line.get("message") == "webhook_request"
    ]
    for expected in [
        (400, "invalid_json", None),
        (400, "field_too_long", "customer_id"),
        (400, "field_too_long", "event_type"),
    ]:
        assert expected in logged


def _json_lines(fn: RunningFunction) -> list[str]:
    return [raw for raw in fn.logs().splitlines() if raw.startswith("{")]
