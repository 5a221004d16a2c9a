"""Replay and purge over the dead-letter queue, with the audit record for each.

Replay groups dead letters by Stripe event id: the same event dead-lettered twice (say,
once by the subscriber and once by Pub/Sub's policy) is republished once and every copy
is acknowledged after that one publish is confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from functions import stripe_events as events
from functions.ports import AuditLog, BillingRepository, DeadLetter, DeadLetterQueue, Publisher
from functions.services.audit import new_record
from schemas.documents import FailureRecord

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Selector:
    """Which dead letters an operation touches. Empty selector = nothing (never implicit all)."""

    event_ids: frozenset[str] = frozenset()
    event_type: str | None = None
    customer_id: str | None = None
    since: float | None = None
    all: bool = False

    @property
    def empty(self) -> bool:
        return not (self.all or self.event_ids or self.event_type or self.customer_id or self.since)

    def matches(self, msg: DeadLetter) -> bool:
        if self.empty:
            return False
        if (
            self.event_ids
            and msg.event_id not in self.event_ids
            and (msg.message_id not in self.event_ids)
        ):
            return False
        if self.event_type and msg.event_type != self.event_type:
            return False
        if self.customer_id and msg.customer_id != self.customer_id:
            return False
        return not (self.since is not None and msg.dead_lettered_at < self.since)


def replay_attributes(msg: DeadLetter, actor: str, now: float) -> dict[str, str]:
    """The original webhook attributes, minus the failure stamps, plus replay markers."""
    attributes = {
        k: v
        for k, v in msg.attributes.items()
        if not k.startswith(events.DEAD_LETTER_PREFIXES) and k != events.FAILURE_KEY
    }
    attributes.update(
        {
            events.REPLAY: "true",  # the subscriber records source=replay in the history
            "replay_of_message_id": msg.message_id,
            "replayed_at": str(int(now)),
            "replayed_by": actor,
        }
    )
    return attributes


@dataclass
class ReplayReport:
    matched: list[str] = field(default_factory=list)  # event ids, in replay order
    republished: dict[str, str] = field(default_factory=dict)  # event id -> new message id
    failed: dict[str, str] = field(default_factory=dict)  # event id -> error
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class PurgeReport:
    purged: list[str] = field(default_factory=list)  # event ids
    messages: int = 0
    dry_run: bool = False


def group_by_event(messages: Sequence[DeadLetter]) -> dict[str, list[DeadLetter]]:
    """Copies of one event together, events in Stripe's order (the order they were created).

    Dead-lettering loses the original order; republishing in creation order means the
    subscriber sees a customer's events as Stripe emitted them (its ordering guard would
    cope either way, but in order nothing is recorded as stale).
    """
    groups: dict[str, list[DeadLetter]] = {}
    for msg in sorted(messages, key=lambda m: (m.created or 0, m.dead_lettered_at, m.event_id)):
        groups.setdefault(msg.event_id, []).append(msg)
    return groups


class DeadLetterService:
    def __init__(
        self,
        queue: DeadLetterQueue,
        publisher: Publisher,
        audit: AuditLog,
        failures: BillingRepository,
        *,
        events_topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._publisher = publisher
        self._audit = audit
        self._failures = failures
        self._topic = events_topic
        self._clock = clock

    def peek(self, limit: int = 10_000) -> list[DeadLetter]:
        """Read without consuming: everything is handed back before returning."""
        messages = self._queue.lease_all(limit)
        self._queue.release(messages)
        return messages

    def last_failure(self, keys: Sequence[str]) -> FailureRecord | None:
        """The failure record of the first key that has one (event id or failure key)."""
        for key in keys:
            failure = self._failures.get_failure(key)
            if failure is not None:
                return failure
        return None

    def replay(
        self,
        selector: Selector,
        *,
        actor: str,
        reason: str = "",
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ReplayReport:
        report = ReplayReport(dry_run=dry_run)
        leased = self._queue.lease_all()
        chosen = [m for m in leased if selector.matches(m)]
        self._queue.release([m for m in leased if not selector.matches(m)])
        groups = group_by_event(chosen)
        report.matched = list(groups)
        if dry_run or not groups:
            self._queue.release(chosen)
            return report
        pending = dict(groups)
        try:
            for event_id, copies in groups.items():
                first = copies[0]
                try:
                    message_id = self._publisher.publish(
                        self._topic,
                        first.data,
                        attributes=replay_attributes(first, actor, self._clock()),
                        ordering_key=first.customer_id or "",
                    )
                except Exception as exc:
                    # Left in the queue (released below) so it can be replayed again.
                    report.failed[event_id] = f"{type(exc).__name__}: {exc}"
                else:
                    self._queue.ack(copies)
                    del pending[event_id]
                    report.republished[event_id] = message_id
                if progress:
                    progress(1)
        finally:
            self._queue.release([m for copies in pending.values() for m in copies])
            if report.republished or report.failed:
                self._audit.write(
                    new_record(
                        actor,
                        "dlq.replay",
                        self._queue.path,
                        reason,
                        republished=sorted(report.republished),
                        failed=report.failed,
                    )
                )
        return report

    def purge(
        self, selector: Selector, *, actor: str, reason: str, dry_run: bool = False
    ) -> PurgeReport:
        leased = self._queue.lease_all()
        chosen = [m for m in leased if selector.matches(m)]
        self._queue.release([m for m in leased if not selector.matches(m)])
        report = PurgeReport(
            purged=sorted({m.event_id for m in chosen}), messages=len(chosen), dry_run=dry_run
        )
        if dry_run or not chosen:
            self._queue.release(chosen)
            return report
        # Audit first: a purge that happened must never be missing from the trail. If the
        # audit cannot be written, hand the leases back so a retry sees the messages now.
        try:
            self._audit.write(
                new_record(
                    actor,
                    "dlq.purge",
                    self._queue.path,
                    reason,
                    event_ids=report.purged,
                    messages=report.messages,
                )
            )
        except BaseException:
            self._queue.release(chosen)
            raise
        self._queue.ack(chosen)
        return report
