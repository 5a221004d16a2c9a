"""In-memory DeadLetterQueue for unit tests of the replay and purge services.

It keeps the real adapter's contract (tests/integration/test_dead_letter_queue_contract.py
runs one suite against both this and PubSubDeadLetterQueue on the emulator):

- `lease_all` hands out, oldest first and at most `limit`, every message that is neither
  acked nor leased, each under a fresh ack id; a leased message is invisible to later
  reads until it is released.
- `ack` removes the messages whose current lease the ack ids name (the main one and any
  `extra_ack_ids`); an ack id whose lease was released, or that was acked already, is
  ignored, as Pub/Sub ignores expired ack ids.
- `release` hands the named leases back at once.

`put` is what arriving on the dead-letter topic looks like; `message_ids()` and
`leased_ids()` let a test check what is left, and that nothing was left leased.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from functions.config import DEFAULT_DEAD_LETTER_SUBSCRIPTION
from functions.ports import DeadLetter


@dataclass
class _Queued:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    published_at: float
    lease: str | None = None  # the ack id of the current lease, if leased


class FakeDeadLetterQueue:
    def __init__(
        self,
        project: str = "fake-project",
        subscription: str = DEFAULT_DEAD_LETTER_SUBSCRIPTION,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = f"projects/{project}/subscriptions/{subscription}"
        self._clock = clock
        self._lock = threading.Lock()
        self._queued: dict[str, _Queued] = {}
        self._leases: dict[str, str] = {}  # ack id -> message id, for current leases only
        self._ack_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    @property
    def path(self) -> str:
        return self._path

    # -- fake-only controls -------------------------------------------------------------

    def put(
        self,
        data: bytes,
        attributes: Mapping[str, str] | None = None,
        *,
        message_id: str | None = None,
        published_at: float | None = None,
    ) -> str:
        """A message reaches the dead-letter topic; returns its message id."""
        with self._lock:
            ident = message_id or f"dl-{next(self._message_ids)}"
            if ident in self._queued:
                raise ValueError(f"message id {ident!r} is queued already")
            stamp = self._clock() if published_at is None else published_at
            self._queued[ident] = _Queued(ident, bytes(data), dict(attributes or {}), stamp)
            return ident

    def message_ids(self) -> list[str]:
        """Every message still in the queue (leased or not), oldest first."""
        with self._lock:
            return [q.message_id for q in self._oldest_first()]

    def leased_ids(self) -> list[str]:
        """The messages currently leased, oldest first: empty once every lease ended."""
        with self._lock:
            return [q.message_id for q in self._oldest_first() if q.lease is not None]

    # -- the port -----------------------------------------------------------------------

    def lease_all(self, limit: int = 10_000) -> list[DeadLetter]:
        with self._lock:
            free = [q for q in self._oldest_first() if q.lease is None][: max(limit, 0)]
            leased = []
            for queued in free:
                queued.lease = f"fake-ack-{next(self._ack_ids)}"
                self._leases[queued.lease] = queued.message_id
                leased.append(
                    DeadLetter(
                        ack_id=queued.lease,
                        message_id=queued.message_id,
                        data=queued.data,
                        attributes=dict(queued.attributes),
                        published_at=queued.published_at,
                    )
                )
            return leased

    def ack(self, messages: Iterable[DeadLetter]) -> None:
        with self._lock:
            for ack_id in _ack_ids(messages):
                message_id = self._leases.pop(ack_id, None)
                if message_id is not None:
                    del self._queued[message_id]

    def release(self, messages: Iterable[DeadLetter]) -> None:
        with self._lock:
            for ack_id in _ack_ids(messages):
                message_id = self._leases.pop(ack_id, None)
                if message_id is not None:
                    self._queued[message_id].lease = None

    def _oldest_first(self) -> list[_Queued]:
        # Stable: messages put at the same instant stay in the order they were put.
        return sorted(self._queued.values(), key=lambda q: q.published_at)


def _ack_ids(messages: Iterable[DeadLetter]) -> list[str]:
    return [aid for m in messages for aid in (m.ack_id, *m.extra_ack_ids)]
