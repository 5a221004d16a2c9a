"""`make dev` runs the synthetic probe too, so a stalled local pipeline says so.

The same Probe the scheduler runs in production (functions/services/probe.py), through the
local webhook URL, every `interval` seconds in a background thread. It prints the first
completion, every failure ("probe FAILED ... pipeline stalled?") and the recovery after
one, so a quiet terminal means the pipeline still turns events into entitlements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from functions.adapters.firestore_repository import FirestoreRepository
from functions.adapters.probe_io import HttpWebhookPoster, PubSubProbeInbox
from functions.config import DEFAULT_PROBE_SUBSCRIPTION
from functions.services.probe import Probe, ProbeResult, current_plan


class LocalProbe:
    def __init__(
        self,
        project: str,
        webhook_url: str,
        secret: str,
        say: Callable[[str], None],
        *,
        interval: float = 60.0,
        timeout: float = 30.0,
        probe: Probe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe or Probe(
            HttpWebhookPoster(webhook_url),
            PubSubProbeInbox(project, DEFAULT_PROBE_SUBSCRIPTION),
            current_plan(FirestoreRepository(project)),
            [secret],
            timeout=timeout,
        )
        self._say, self._interval, self._clock = say, interval, clock
        self._due = clock() + min(5.0, interval)  # let the functions finish starting
        self._running: threading.Thread | None = None
        self._failing = False
        self._completed = 0
        self._closed = False

    def close(self) -> None:
        """The stack is stopping: a probe still in flight fails, and that is no news."""
        self._closed = True

    def check(self) -> None:
        """Start a probe when one is due and none is running (called from the dev loop)."""
        if self._running is not None and self._running.is_alive():
            return
        if self._clock() < self._due:
            return
        self._due = self._clock() + self._interval
        self._running = threading.Thread(target=self._run_once, name="probe", daemon=True)
        self._running.start()

    def _run_once(self) -> None:
        try:
            result = self._probe.run()
        except Exception as exc:
            result = ProbeResult(False, "-", "error", detail=f"{type(exc).__name__}: {exc}")
        self.report(result)

    def report(self, result: ProbeResult) -> None:
        if self._closed:
            return
        if not result.ok:
            self._say(
                f"probe FAILED at {result.stage}: {result.detail} "
                "(pipeline stalled? see runbooks/synthetic-probe.md)"
            )
            self._failing = True
            return
        if self._failing:
            self._say(f"probe recovered: completed in {result.latency_ms} ms")
        elif self._completed == 0:
            self._say(
                f"probe completed in {result.latency_ms} ms (runs every {self._interval:g} s)"
            )
        self._failing = False
        self._completed += 1
