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

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1 import SubscriberClient

from functions.errors import TransientError

# Attributes Pub/Sub's dead-letter policy adds when it forwards after max attempts.
SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
_DEAD_LETTER_PREFIXES = ("dead_letter", "dead_lettered", "CloudPubSubDeadLetter")
_DROP_ON_REPLAY = ("failure_key",)
_PULL_BATCH = 100
# Long enough to replay a large batch, within Pub/Sub's 600 s maximum.
_LEASE_SECONDS = 300


@dataclass(frozen=True)
class DeadLetter:
    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    published_at: float  # when it reached the dead-letter topic
    extra_ack_ids: tuple[str, ...] = ()  # redelivered copies of the same message

    @property
    def event_id(self) -> str:
        return (
            self.attributes.get("event_id")
            or self._envelope().get("id")
            or self.attributes.get("failure_key")
            or f"msg-{self.message_id}"
        )

    @property
    def event_type(self) -> str | None:
        return self.attributes.get("event_type") or self._envelope().get("type")

    @property
    def customer_id(self) -> str | None:
        if self.attributes.get("customer_id"):
            return self.attributes["customer_id"]
        obj = self._envelope().get("data", {}).get("object", {})
        if not isinstance(obj, dict):
            return None
        if obj.get("object") == "customer":
            return obj.get("id")
        customer = obj.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return customer if isinstance(customer, str) else None

    @property
    def created(self) -> int | None:
        """The Stripe event's own creation time, when the body can be read."""
        stamp = self.attributes.get("created", "")
        if stamp.isdigit():
            return int(stamp)
        value = self._envelope().get("created")
        return value if isinstance(value, int) else None

    @property
    def reason_code(self) -> str:
        if "dead_letter_reason_code" in self.attributes:
            return self.attributes["dead_letter_reason_code"]
        # Forwarded by Pub/Sub's policy: the subscriber kept failing transiently.
        return "max_attempts" if SOURCE_DELIVERY_COUNT in self.attributes else "unknown"

    @property
    def reason(self) -> str:
        return self.attributes.get("dead_letter_reason", "")

    @property
    def delivery_attempts(self) -> int | None:
        count = self.attributes.get(SOURCE_DELIVERY_COUNT)
        return int(count) if count and count.isdigit() else None

    @property
    def dead_lettered_at(self) -> float:
        stamp = self.attributes.get("dead_lettered_at", "")
        return float(stamp) if stamp.isdigit() else self.published_at

    def _envelope(self) -> dict[str, Any]:
        # Best effort: an undecodable body is exactly the kind of thing that lands here.
        try:
            parsed = json.loads(self.data)
        except (ValueError, UnicodeDecodeError):
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def envelope_summary(self) -> dict[str, Any]:
        env = self._envelope()
        obj = env.get("data", {}).get("object", {}) if env else {}
        return {
            "id": env.get("id"),
            "type": env.get("type"),
            "created": env.get("created"),
            "livemode": env.get("livemode"),
            "api_version": env.get("api_version"),
            "object": obj.get("object") if isinstance(obj, dict) else None,
            "object_id": obj.get("id") if isinstance(obj, dict) else None,
            "bytes": len(self.data),
            "parseable": bool(env),
        }


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
        if not k.startswith(_DEAD_LETTER_PREFIXES) and k not in _DROP_ON_REPLAY
    }
    attributes.update(
        {
            "replay": "true",  # the subscriber records source=replay in the history
            "replay_of_message_id": msg.message_id,
            "replayed_at": str(int(now)),
            "replayed_by": actor,
        }
    )
    return attributes


class DeadLetterQueue:
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
        try:
            return fn()
        except gexc.NotFound as exc:
            raise DeadLetterError(f"dead-letter subscription not found ({what})") from exc
        except (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.RetryError,
            gexc.InternalServerError,
        ) as exc:
            raise TransientError(f"pub/sub {what} failed: {type(exc).__name__}") from exc


class DeadLetterError(RuntimeError):
    """The queue cannot be read as configured (for example the subscription is missing)."""


def _ack_ids(messages: Iterable[DeadLetter]) -> list[str]:
    return [aid for m in messages for aid in (m.ack_id, *m.extra_ack_ids)]


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
