"""Keep the local stack's function processes up, and say so when one dies.

Each function is a functions-framework process: a gunicorn master that forks the
worker(s) serving requests. gunicorn replaces a dead worker itself; a dead master takes
the port with it, so the supervisor kills what is left of its process group and starts
the function again on the same port and log file. Every death and restart is a line in
`make dev`'s output: a stack that heals silently would hide the fault being tested.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from infra.local.stack import RunningFunction, port_answers, start_function

# How long a killed group may take to let go of its port before we start anyway.
PORT_RELEASE_SECONDS = 10.0

Report = Callable[[str], None]


def children(pid: int) -> set[int]:
    """The direct children of `pid` (gunicorn's workers of a master), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(part) for part in text.split()}


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a dead master's group (an orphaned worker holds the port)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Supervisor:
    def __init__(self, functions: list[RunningFunction], report: Report) -> None:
        self.functions = functions  # the stack's own list: restarted entries replace in place
        self._report = report
        self._workers = {f.target: children(f.proc.pid) for f in functions}
        self.restarts: dict[str, int] = {}
        # A function that cannot start (bad config, port still held) is retried with
        # backoff, not every tick: one line per try, not a flood.
        self._failed_starts: dict[str, int] = {}
        self._next_try: dict[str, float] = {}

    def check(self) -> None:
        for index, function in enumerate(list(self.functions)):
            if function.proc.poll() is None:
                self._check_workers(function)
                continue
            self._restart(index, function)

    def _check_workers(self, function: RunningFunction) -> None:
        now = children(function.proc.pid)
        before = self._workers.get(function.target, set())
        for pid in sorted(before - now):
            self._report(
                f"supervisor: {function.target} worker {pid} died; gunicorn (master "
                f"{function.proc.pid}) replaces it"
            )
        if now:
            self._workers[function.target] = now

    def _restart(self, index: int, function: RunningFunction) -> None:
        if time.monotonic() < self._next_try.get(function.target, 0.0):
            return
        code = function.proc.returncode
        self._report(
            f"supervisor: {function.target} (pid {function.proc.pid}) exited with {code}; "
            f"restarting on port {function.port}"
        )
        kill_group(function.proc.pid)
        # Until the orphaned worker is gone its socket still answers: starting now would
        # report a restart that the new master's failed bind then undoes.
        deadline = time.monotonic() + PORT_RELEASE_SECONDS
        while port_answers(function.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            fresh = start_function(
                function.target,
                function.port,
                function.env,
                signature_type=function.signature_type,
                log_path=function.log_path,
            )
        except RuntimeError as exc:
            # Left dead in the list: a later check tries again.
            failures = self._failed_starts.get(function.target, 0) + 1
            self._failed_starts[function.target] = failures
            delay = min(30.0, 2.0**failures)
            self._next_try[function.target] = time.monotonic() + delay
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._report(
                f"supervisor: {function.target} did not start again ({first_line}); "
                f"next try in {delay:.0f}s"
            )
            return
        self._failed_starts.pop(function.target, None)
        self.functions[index] = fresh
        self._workers[function.target] = set()
        self.restarts[function.target] = self.restarts.get(function.target, 0) + 1
        self._report(
            f"supervisor: {function.target} restarted (pid {fresh.proc.pid}, restart "
            f"{self.restarts[function.target]})"
        )
