"""infra/local/serve.py's read deadline, on a socket pair (no server needed).

The server-level behaviour (slow senders, 408s) is in
tests/integration/test_webhook_hostile_http.py.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from gunicorn.http.errors import NoMoreData

from infra.local.serve import (
    DEFAULT_READ_TIMEOUT_SECONDS,
    DeadlineSocket,
    ReadDeadlinePassed,
    read_timeout_seconds,
)


def test_row3_read_timeout_setting() -> None:
    assert read_timeout_seconds({}) == DEFAULT_READ_TIMEOUT_SECONDS
    assert read_timeout_seconds({"REQUEST_READ_TIMEOUT_SECONDS": "1.5"}) == 1.5
    for bad in ("0", "-1"):
        with pytest.raises(ValueError, match="REQUEST_READ_TIMEOUT_SECONDS"):
            read_timeout_seconds({"REQUEST_READ_TIMEOUT_SECONDS": bad})


def test_row3_one_deadline_covers_every_read_of_a_request_however_it_trickles() -> None:
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                theirs.sendall(b"x")
            except OSError:
                return
            stop.wait(0.1)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    sock = DeadlineSocket(ours, 0.5)
    started = time.monotonic()
    got = b""
    try:
        with pytest.raises(ReadDeadlinePassed) as info:
            while True:
                got += sock.recv(1)  # each read is quick; together they are too slow
    finally:
        stop.set()
        theirs.close()
        sender.join(timeout=2)
    elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 1.5
    assert got  # bytes did arrive: a per-read timeout would never have fired
    assert sock.expired and not sock.sent
    # gunicorn closes quietly on NoMoreData; a function reading its body sees a timeout.
    assert isinstance(info.value, NoMoreData) and isinstance(info.value, TimeoutError)
    assert ours.gettimeout() is None  # blocking again, as gunicorn left it
    sock.rearm()
    assert not sock.expired
    ours.close()
