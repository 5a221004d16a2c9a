"""Issue 17 rows 12 and 13 on the real `make dev` process (`python -m infra.local.stack dev`):
a SIGKILLed worker or master of either function is reported and replaced, the webhook keeps
answering while the subscriber's master is down, nothing published in the meantime is lost,
and a push loop that stops delivering is reported by the watchdog."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests

from functions.adapters.firestore_repository import FirestoreRepository
from infra.local.emulators import Emulators, free_port
from infra.local.scenarios import build
from infra.local.stack import ROOT, SUBSCRIBER_TARGET, WEBHOOK_TARGET
from infra.local.supervise import children
from tests.support.signing import encode, signed_headers

pytestmark = pytest.mark.emulator
SECRET = "whsec_dev_supervision_test"
STALL_SECONDS = 4


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    project: str
    webhook_url: str
    lines: list[str] = field(default_factory=list)

    def wait_line(self, pattern: str, timeout: float = 60, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if match := regex.search(line):
                    return match
            assert self.proc.poll() is None, "make dev exited:\n" + "\n".join(self.lines)
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-40:]))

    def pid(self, target: str) -> int:
        """The function's current master: as started, or as last restarted."""
        regex = re.compile(rf"(?:logs {target}: .*|{target} restarted) \(pid (\d+)")
        pids = [int(m.group(1)) for line in self.lines if (m := regex.search(line))]
        assert pids, f"no pid for {target}"
        return pids[-1]

    def post_event(self) -> str:
        tag = uuid.uuid4().hex[:10]
        event = build("checkout_active", customer_id=f"cus_{tag}", account_id=f"acct_{tag}").events[
            0
        ]
        body = encode(event)
        response = requests.post(
            self.webhook_url, data=body, headers=signed_headers(body, [SECRET]), timeout=10
        )
        assert response.status_code == 200, response.text
        return str(event["id"])


@pytest.fixture(scope="module")
def dev(emulators: Emulators) -> Iterator[Dev]:
    project = f"dev-{uuid.uuid4().hex[:8]}"
    webhook_port, subscriber_port = free_port(), free_port()
    env = {
        **os.environ,
        **emulators.env(),
        "GOOGLE_CLOUD_PROJECT": project,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PORT": str(webhook_port),
        "SUBSCRIBER_PORT": str(subscriber_port),
        "WATCHDOG_STALL_SECONDS": str(STALL_SECONDS),
        "READ_API_PORT": str(free_port()),
        "PROBE_INTERVAL_SECONDS": "3",
        "PROBE_TIMEOUT_SECONDS": "6",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Dev(proc, project, f"http://127.0.0.1:{webhook_port}/")

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.lines.append(line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    try:
        running.wait_line("running; Ctrl-C to stop", timeout=90)
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def processed(project: str, *event_ids: str) -> Callable[[], bool]:
    repo = FirestoreRepository(project)
    return lambda: all(repo.is_processed(e) for e in event_ids)


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def one_worker(master: int) -> int:
    deadline = time.monotonic() + 20
    while not (workers := children(master)):
        assert time.monotonic() < deadline, f"no worker under {master}"
        time.sleep(0.2)
    return min(workers)


def test_killed_workers_and_masters_are_replaced_and_the_webhook_stays_up(dev: Dev) -> None:
    first = dev.post_event()
    wait(processed(dev.project, first), 60, "the first event")

    for target in (SUBSCRIBER_TARGET, WEBHOOK_TARGET):
        worker = one_worker(dev.pid(target))
        mark = len(dev.lines)
        os.kill(worker, signal.SIGKILL)
        dev.wait_line(rf"supervisor: {target} worker {worker} died", timeout=20, after=mark)

    # The subscriber's master: the webhook must keep answering while it is down.
    mark = len(dev.lines)
    os.kill(dev.pid(SUBSCRIBER_TARGET), signal.SIGKILL)
    while_down = [dev.post_event() for _ in range(3)]
    dev.wait_line(rf"supervisor: {SUBSCRIBER_TARGET} \(pid \d+\) exited with -9", 20, mark)
    restarted = dev.wait_line(rf"supervisor: {SUBSCRIBER_TARGET} restarted \(pid (\d+)", 60, mark)
    wait(processed(dev.project, *while_down), 90, "events published while it was down")

    # The webhook's master too; then both serve again.
    mark = len(dev.lines)
    os.kill(dev.pid(WEBHOOK_TARGET), signal.SIGKILL)
    dev.wait_line(rf"supervisor: {WEBHOOK_TARGET} restarted \(pid \d+", 60, mark)
    after = dev.post_event()
    wait(processed(dev.project, after), 60, "an event after both restarts")
    assert int(restarted.group(1)) == dev.pid(SUBSCRIBER_TARGET)


def test_a_stalled_push_loop_is_reported_and_its_recovery_too(dev: Dev) -> None:
    # Freeze the subscriber (master and worker): the emulator's pushes get no answer,
    # exactly what a dead push loop looks like from outside.
    master = dev.pid(SUBSCRIBER_TARGET)
    mark = len(dev.lines)
    os.killpg(master, signal.SIGSTOP)
    try:
        stuck = dev.post_event()
        stalled = dev.wait_line(r"watchdog: push loop STALLED: (\d+) message", 30, mark)
        assert int(stalled.group(1)) >= 1
    finally:
        os.killpg(master, signal.SIGCONT)
    dev.wait_line(r"watchdog: push loop delivering again", 60, mark)
    wait(processed(dev.project, stuck), 60, "the event held while stalled")
    assert dev.pid(SUBSCRIBER_TARGET) == master  # frozen and thawed, never restarted


def _printed_after(dev: Dev, heading: str) -> str:
    index = next(i for i, line in enumerate(dev.lines) if line.startswith(heading))
    return dev.lines[index + 1].strip()


def test_the_printed_curls_work_as_printed(dev: Dev) -> None:
    """What a person copies from make dev's output: the signed event, then the read API."""
    posted = subprocess.run(
        ["bash", "-c", _printed_after(dev, "example signed request")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(posted.stdout) == {"received": True}
    repo = FirestoreRepository(dev.project)
    wait(lambda: (r := repo.get_record("cus_dev")) is not None and r.version > 0, 60, "cus_dev")
    read = subprocess.run(
        ["bash", "-c", _printed_after(dev, "its entitlements")],
        capture_output=True,
        text=True,
        check=True,
    )
    state = json.loads(read.stdout)
    assert (state["account_id"], state["access"], state["entitlements"]["plan"]) == (
        "acct_dev",
        "full",
        "team",
    )


def test_the_synthetic_probe_reports_a_stall_and_the_recovery(dev: Dev) -> None:
    dev.wait_line(r"probe completed in [\d.]+ ms", timeout=60)
    master = dev.pid(SUBSCRIBER_TARGET)
    mark = len(dev.lines)
    os.killpg(master, signal.SIGSTOP)
    try:
        dev.wait_line(r"probe FAILED at delivery: .*pipeline stalled\?", timeout=40, after=mark)
    finally:
        os.killpg(master, signal.SIGCONT)
    dev.wait_line(r"probe recovered: completed in [\d.]+ ms", timeout=60, after=mark)
