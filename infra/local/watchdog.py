"""Report a stalled push loop on the local stack (issue 17 row 13).

The Pub/Sub emulator's push loop has been seen to die silently: messages stay in
stripe-events and nobody is told. The watchdog sees both sides without touching the
pipeline: a pull subscription of its own on stripe-events shows what was published
(message ids), and the subscriber's JSON log shows each delivery that reached it
(`message_id` on `event_processed` / `event_failed`). Messages outstanding and no
delivery for `stall_seconds` is one clear line; the first delivery after it, another.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.observe import pull_once

WATCHDOG_SUBSCRIPTION = "stripe-events-watchdog"
# Lines that mean the subscriber answered the push (acked, or parked on the dead-letter topic).
_DONE = "event_processed"
_FAILED = "event_failed"

Report = Callable[[str], None]


class PushWatchdog:
    def __init__(
        self,
        project: str,
        topic: str,
        subscriber_log: Callable[[], Path],
        report: Report,
        *,
        stall_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        from google.api_core.exceptions import AlreadyExists  # noqa: PLC0415
        from google.cloud.pubsub_v1 import SubscriberClient  # noqa: PLC0415

        self._client: Any = client if client is not None else SubscriberClient()
        self._path = self._client.subscription_path(project, WATCHDOG_SUBSCRIPTION)
        with contextlib.suppress(AlreadyExists):
            self._client.create_subscription(
                request={"name": self._path, "topic": f"projects/{project}/topics/{topic}"}
            )
        self._log = subscriber_log
        self._offset = 0
        self._report = report
        self._stall = stall_seconds
        self._clock = clock
        self.outstanding: dict[str, float] = {}  # message id -> when the watchdog saw it
        self._last_delivery = clock()
        self.stalled = False

    def check(self) -> None:
        now = self._clock()
        for message in pull_once(self._client, self._path):
            self.outstanding.setdefault(message.message_id, now)
        delivered = self._read_deliveries()
        if delivered:
            self._last_delivery = now
            if self.stalled:
                self.stalled = False
                self._report(
                    f"watchdog: push loop delivering again ({len(self.outstanding)} outstanding)"
                )
        if not self.outstanding or self.stalled:
            return
        quiet_since = max(self._last_delivery, min(self.outstanding.values()))
        if now - quiet_since >= self._stall:
            self.stalled = True
            self._report(
                f"watchdog: push loop STALLED: {len(self.outstanding)} message(s) outstanding "
                f"on stripe-events, no delivery to the subscriber for {now - quiet_since:.0f}s "
                f"(oldest {min(self.outstanding, key=self.outstanding.__getitem__)}); "
                "restart the Pub/Sub emulator (make dev) if it does not recover"
            )

    def _read_deliveries(self) -> int:
        path = self._log()
        try:
            with path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except OSError:
            return 0
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        delivered = 0
        for raw in complete.splitlines():
            line = _json_line(raw)
            message_id = line.get("message_id") if line else None
            if not line or not message_id:
                continue
            delivered += 1
            if line.get("message") == _DONE or (
                line.get("message") == _FAILED and line.get("transient") is False
            ):
                self.outstanding.pop(str(message_id), None)
        return delivered

    def close(self) -> None:
        self._client.close()


def _json_line(raw: bytes) -> dict[str, Any] | None:
    if not raw.startswith(b"{"):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
