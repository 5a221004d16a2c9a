"""Fixtures for the Stripe-facing integration tests: the local Stripe server and Firestore.

Firestore comes from the shared session fixture `emulators` (tests/conftest.py) when it
exists; otherwise this module starts the Firestore emulator itself for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.support.stripe_server import StripeServer


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    server = StripeServer().start()
    yield server
    server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def firestore_emulator(request: pytest.FixtureRequest) -> Iterator[str]:
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("emulators")
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if host:
        yield host
        return
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud (Firestore emulator) not installed")
    host = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        ["gcloud", "emulators", "firestore", "start", f"--host-port={host}", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                pytest.fail("Firestore emulator did not start")
            time.sleep(0.3)
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture
def firestore_project(firestore_emulator: str) -> str:
    """A fresh project id per test: the emulator keeps projects apart."""
    return f"demo-billing-{uuid.uuid4().hex[:10]}"
