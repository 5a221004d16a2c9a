"""How the local stack serves a function: functions-framework's app and gunicorn settings,
plus a per-request read deadline (issue 17, row 3).

`python -m functions_framework` runs gunicorn's threaded worker (`THREADS` threads, 4 per
CPU by default) and a thread reading a request blocks on the socket for as long as the
sender takes: 8 senders trickling a byte a second held all 8 threads of a 2-CPU machine
and every legitimate request timed out. Its launcher reads only THREADS, WORKERS,
CLOUD_RUN_TIMEOUT_SECONDS, THREADED_TIMEOUT_ENABLED and GUNICORN_LOG_LEVEL; it builds a
gunicorn BaseApplication, which ignores GUNICORN_CMD_ARGS and config files, and gunicorn's
`timeout` is a worker heartbeat, not a read bound (THREADED_TIMEOUT_ENABLED raises in the
thread only between bytecodes, never inside a blocked recv). So this launcher builds the
same app and the same GunicornApplication with the same settings, and swaps in a worker
whose connections carry a deadline: from the first byte of a request, its headers and
body must arrive within REQUEST_READ_TIMEOUT_SECONDS (default 5), or the read fails; a
request cut off in its headers is answered 408 here, one cut off in its body by the
function (the webhook answers 408 `body_timeout`).

In production the functions run on Cloud Run, whose front end is in front of every
request: the function's timeout (30 s for the webhook, infra/terraform/functions.tf)
bounds each request, after which Cloud Run closes the connection to the instance (its
request-timeout documentation), which ends a blocked read. This module is not deployed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

from gunicorn.http.errors import NoMoreData  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from functions.log import get_logger

READ_TIMEOUT_ENV = "REQUEST_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_SECONDS = 5.0
WORKER_CLASS = "infra.local.serve.DeadlineWorker"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b'Content-Length: 28\r\n\r\n{"error": "request_timeout"}'
)


def read_timeout_seconds(env: os._Environ[str] | dict[str, str] = os.environ) -> float:
    raw = env.get(READ_TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_READ_TIMEOUT_SECONDS
    seconds = float(raw)
    if seconds <= 0:
        raise ValueError(f"{READ_TIMEOUT_ENV} must be positive, got {raw!r}")
    return seconds


class ReadDeadlinePassed(NoMoreData, TimeoutError):  # type: ignore[misc]
    """The sender did not deliver its request within the deadline.

    A NoMoreData, so gunicorn closes the connection without a traceback when it happens
    in the headers; a TimeoutError, so a function reading its body can tell it apart.
    """

    def __str__(self) -> str:
        return "request read deadline passed"


class DeadlineSocket:
    """A connection's socket whose reads share one deadline per request.

    The deadline starts at the first recv of a request, so time spent waiting on an idle
    kept-alive connection is not counted. Everything else is the socket's own.
    """

    def __init__(self, sock: Any, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self._deadline: float | None = None
        self.expired = False
        self.sent = False

    def rearm(self) -> None:
        self._deadline = None
        self.expired = False
        self.sent = False

    def _expire(self) -> ReadDeadlinePassed:
        self.expired = True
        return ReadDeadlinePassed()

    def recv(self, size: int, flags: int = 0) -> bytes:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        remaining = self._deadline - now
        if remaining <= 0:
            raise self._expire()
        prior = self._sock.gettimeout()
        self._sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            data: bytes = self._sock.recv(size, flags)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                raise self._expire() from None
            raise  # the caller's own, shorter timeout (gunicorn's body drain)
        finally:
            self._restore(prior)
        return data

    def _restore(self, prior: float | None) -> None:
        # A socket the peer reset can be closed by now; there is no timeout left to restore.
        if self._sock.fileno() != -1:
            self._sock.settimeout(prior)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self.sent = True
        self._sock.sendall(data, flags)

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sent = True
        sent: int = self._sock.send(data, flags)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DeadlineWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker, each connection's reads bounded by a deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout_seconds()

    def handle(self, conn: Any) -> Any:
        sock = conn.sock
        if not isinstance(sock, DeadlineSocket):
            # Before the connection's parser is built (TConn.init), so it reads through us.
            sock = conn.sock = DeadlineSocket(sock, self.read_timeout)
        sock.rearm()
        result = super().handle(conn)
        if sock.expired and not sock.sent:
            self._answer_timeout(sock, conn.client)
        return result

    def _answer_timeout(self, sock: DeadlineSocket, client: Any) -> None:
        peer = client[0] if isinstance(client, tuple) and client else str(client)
        get_logger(component="server").warning(
            "request_read_timeout", peer=peer, read_timeout_seconds=self.read_timeout
        )
        try:
            sock.settimeout(1.0)
            sock.sendall(_TIMEOUT_RESPONSE)
        except OSError:
            # The sender is gone or not reading; the connection is closed next either way.
            return


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one function like `functions-framework` does, with DeadlineWorker."""
    parser = argparse.ArgumentParser(prog="python -m infra.local.serve")
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--signature-type", default="http")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - as functions-framework
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    read_timeout_seconds()  # a bad value stops the start, naming the variable
    # The framework's own launcher classes: same app, same gunicorn settings as
    # `python -m functions_framework`, only the worker class differs.
    import functions_framework  # noqa: PLC0415 - the server process only
    from functions_framework._http.gunicorn import GunicornApplication  # noqa: PLC0415

    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        args.target, args.source, args.signature_type
    )
    server = GunicornApplication(  # type: ignore[no-untyped-call]
        app, args.host, args.port, False, worker_class=WORKER_CLASS
    )
    server.run()


if __name__ == "__main__":
    main()
