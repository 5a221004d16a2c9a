"""The dead-letter queue as on-call sees it: list, inspect, replay, purge.

Pub/Sub has no "browse": the only way to read a subscription is to pull, which leases the
messages. Every operation here therefore pulls what is there, extends the lease while it
works, and at the end either acknowledges a message (replayed or purged) or hands it back
at once (ack deadline 0) so nothing is lost when a read-only command or a crash ends early.

A message is acknowledged only after the republish to `stripe-events` returned a message
id: a crash in between leaves the dead letter in place, and replaying it again is harmless
because the subscriber is idempotent on the Stripe event id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient

from functions.adapters.google_errors import google_call
from functions.ports import DeadLetter

_PULL_BATCH = 100
# Long enough to replay a large batch, within Pub/Sub's 600 s maximum.
_LEASE_SECONDS = 300


class PubSubDeadLetterQueue:
    """A lease-based view of the ops pull subscription on the dead-letter topic."""

    def __init__(
        self,
        project: str,
        subscription: str,
        client: SubscriberClient | None = None,
    ) -> None:
        self._client = client or SubscriberClient()
        self._path: str = self._client.subscription_path(project, subscription)

    @property
    def path(self) -> str:
        return self._path

    def lease_all(self, limit: int = 10_000) -> list[DeadLetter]:
        """Pull everything (up to `limit`), leased for _LEASE_SECONDS; release or ack after."""
        by_id: dict[str, DeadLetter] = {}
        empty_pulls = 0
        # Pull can come back empty while messages exist; two empty answers in a row is "done".
        while len(by_id) < limit and empty_pulls < 2:
            received = self._pull(min(_PULL_BATCH, limit - len(by_id)))
            if not received:
                empty_pulls += 1
                continue
            empty_pulls = 0
            fresh: list[str] = []
            for item in received:
                msg = item.message
                prior = by_id.get(msg.message_id)
                if prior is not None:
                    by_id[msg.message_id] = DeadLetter(
                        prior.ack_id,
                        prior.message_id,
                        prior.data,
                        prior.attributes,
                        prior.published_at,
                        (*prior.extra_ack_ids, item.ack_id),
                    )
                    continue
                by_id[msg.message_id] = DeadLetter(
                    ack_id=item.ack_id,
                    message_id=msg.message_id,
                    data=bytes(msg.data),
                    attributes=dict(msg.attributes),
                    published_at=msg.publish_time.timestamp(),
                )
                fresh.append(item.ack_id)
            self._extend(fresh)
        return sorted(by_id.values(), key=lambda m: m.published_at)

    def ack(self, messages: Iterable[DeadLetter]) -> None:
        for chunk in _chunks(_ack_ids(messages)):
            request = {"subscription": self._path, "ack_ids": chunk}
            self._call("acknowledge", partial(self._client.acknowledge, request=request))

    def release(self, messages: Iterable[DeadLetter]) -> None:
        """Hand messages back immediately, so the next reader sees them."""
        self._modify(_ack_ids(messages), 0)

    def _extend(self, ack_ids: Sequence[str]) -> None:
        self._modify(ack_ids, _LEASE_SECONDS)

    def _modify(self, ack_ids: Sequence[str], seconds: int) -> None:
        for chunk in _chunks(list(ack_ids)):
            request = {
                "subscription": self._path,
                "ack_ids": chunk,
                "ack_deadline_seconds": seconds,
            }
            self._call(
                "modify ack deadline", partial(self._client.modify_ack_deadline, request=request)
            )

    def _pull(self, max_messages: int) -> list[Any]:
        response = self._call(
            "pull",
            lambda: self._client.pull(
                request={
                    "subscription": self._path,
                    "max_messages": max_messages,
                    # Deprecated for streaming consumers, right for a one-shot CLI read.
                    "return_immediately": True,
                },
                timeout=30,
            ),
        )
        return list(response.received_messages)

    @staticmethod
    def _call(what: str, fn: Callable[[], Any]) -> Any:
        with google_call(f"dead-letter subscription {what}"):
            return fn()


def _ack_ids(messages: Iterable[DeadLetter]) -> list[str]:
    return [aid for m in messages for aid in (m.ack_id, *m.extra_ack_ids)]


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
