"""process_stripe_event's logic: one Pub/Sub message -> at most one effect.

Failure routing (functions/errors.py): a PermanentError is recorded in `failures/` and
the original bytes are published to the dead-letter topic here, then the message is
acknowledged so the customer's ordering key is released at once. Anything else is
recorded when possible and raised, so Pub/Sub redelivers with backoff; on the last
attempt we allow ourselves (one below the subscription's dead-letter policy) the message
is dead-lettered here too, with its last error as the reason, and Pub/Sub's policy stays
the backstop for when that publish itself fails.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pydantic

import statemachine
from functions import stripe_events as events
from functions.errors import InvalidPayload, PermanentError, TransientError
from functions.log import get_logger
from functions.ports import Operation, Publisher, new_trace_id
from functions.services.admission import admit
from functions.services.apply import Applier
from functions.services.thin_events import ThinEvents
from functions.services.thin_events import is_handled_thin_type as thin_handled
from schemas.documents import FailureRecord
from schemas.ids import storable_key
from schemas.stripe import StripeEvent
from schemas.thin_events import ThinEventNotification
from statemachine.decision import Policy

_MAX_REASON = 500
# Pub/Sub refuses an attribute value over 1024 bytes; a reason quoting non-ASCII input can
# be 500 characters and still exceed it, and a refused dead-letter publish would send
# the message round the retry loop instead of parking it.
_MAX_ATTRIBUTE_BYTES = 1024


class RetriesExhausted(PermanentError):
    """A transient failure outlasted the attempts we allow; parked with its last error."""

    reason_code = "retries_exhausted"


def _fit_attribute(text: str) -> str:
    return text.encode()[:_MAX_ATTRIBUTE_BYTES].decode(errors="ignore")


@dataclass(frozen=True)
class IncomingMessage:
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_id: str = ""
    delivery_attempt: int | None = None

    @classmethod
    def from_push(cls, body: Mapping[str, Any]) -> IncomingMessage:
        """Decode the Pub/Sub push envelope (CloudEvent data of messagePublished)."""
        message = body.get("message")
        if not isinstance(message, Mapping):
            raise InvalidPayload("push body has no 'message' object")
        try:
            data = base64.b64decode(message.get("data") or "", validate=True)
        except (binascii.Error, TypeError) as exc:
            raise InvalidPayload("message data is not valid base64") from exc
        attributes = message.get("attributes") or {}
        attempt = body.get("deliveryAttempt") or message.get("deliveryAttempt")
        return cls(
            data=data,
            attributes={str(k): str(v) for k, v in attributes.items()},
            message_id=str(message.get("messageId") or message.get("message_id") or ""),
            delivery_attempt=int(attempt) if attempt else None,
        )


@dataclass(frozen=True)
class Outcome:
    decision: str  # applied|duplicate|stale|noop|ignored|anomaly|dead_lettered
    event_id: str | None
    customer_id: str | None
    version: int | None = None
    from_status: str | None = None
    to_status: str | None = None


class Subscriber:
    def __init__(
        self,
        applier: Applier,
        publisher: Publisher,
        *,
        project: str,
        dead_letter_topic: str,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        max_delivery_attempts: int | None = None,
        thin: ThinEvents | None = None,
    ) -> None:
        """`publisher` parks messages on the dead-letter topic; `applier` does the rest.

        `clock` is the present an event's `created` is judged against (admission);
        `max_delivery_attempts` is the subscription's dead-letter policy (None: leave
        every retry decision to Pub/Sub); `thin` reads the objects thin notifications
        name (None: a handled thin notification fails transiently, as a deployment
        without Stripe access).
        """
        self._clock = clock
        self._thin = thin
        self._repo = applier.repo
        self._publisher = publisher
        self._project = project
        self._dead_letter_topic = dead_letter_topic
        self._policy = policy
        self.applier = applier
        self.relay = applier.relay
        # One below the policy, not equal: the emulator's push loop has been seen to
        # crash when a message reaches the policy's count (issue 17 row 13), so locally a
        # message must never get there; and in production, if our dead-letter publish
        # fails on this attempt, Pub/Sub still delivers once more and then its own policy
        # forwards the message, so nothing depends on this code path alone.
        self._last_attempt = max_delivery_attempts - 1 if max_delivery_attempts else None

    def handle(self, message: IncomingMessage) -> Outcome:
        started = time.perf_counter()
        # The webhook's trace; a new one for a message without (a replay from old tooling),
        # so the log lines and the entitlement message of this work still share one.
        trace_id = message.attributes.get(events.TRACE_ID) or new_trace_id()
        log = get_logger(
            component="subscriber",
            message_id=message.message_id,
            trace_id=trace_id,
            project=self._project,
        )
        # What failure records and dead letters are named by: the notification until the
        # event built from its read replaces it.
        event: StripeEvent | ThinEventNotification | None = None
        extra: dict[str, Any] = {}
        try:
            parsed = event = self._parse(message.data)
            if isinstance(parsed, ThinEventNotification):
                log = log.bind(event_id=parsed.id, event_type=parsed.type, thin=True)
                found = self._evidence(parsed)
                if found is None:
                    outcome = self._ignore(parsed, message, trace_id)
                else:
                    event, extra["coalesced"] = found
                    # op_id: the id it is applied under (an invoice's v1 twin, see thin_events).
                    log = log.bind(
                        customer_id=event.customer_id, object_id=event.object_id, op_id=event.id
                    )
                    outcome = self._apply(event, message, trace_id, op_type=parsed.type)
            else:
                log = log.bind(
                    event_id=parsed.id, event_type=parsed.type, customer_id=parsed.customer_id
                )
                outcome = self._apply(parsed, message, trace_id)
        except PermanentError as exc:
            try:
                return self._dead_letter(message, event, exc, log)
            except Exception as route_exc:
                # Could not park it: keep the message in Pub/Sub's hands instead.
                self._raise_transient(message, event, route_exc, log)
        except Exception as exc:
            if self._is_last_attempt(message):
                return self._give_up(message, event, exc, log)
            self._raise_transient(message, event, exc, log)
        log.info(
            "event_processed",
            decision=outcome.decision,
            version=outcome.version,
            from_status=outcome.from_status,
            to_status=outcome.to_status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            **extra,
        )
        return outcome

    @staticmethod
    def _parse(data: bytes) -> StripeEvent | ThinEventNotification:
        # The webhook's parser, so nothing it acknowledged to Stripe is unreadable here.
        return events.parse_message(data)

    def _evidence(self, note: ThinEventNotification) -> tuple[StripeEvent, bool] | None:
        if self._thin is None:
            if not thin_handled(note.type):
                return None
            raise TransientError(f"{note.type}: this subscriber cannot read from Stripe")
        return self._thin.evidence(note)

    def _ignore(
        self, note: ThinEventNotification, message: IncomingMessage, trace_id: str
    ) -> Outcome:
        """A thin type we do not act on: the marker only, like an unhandled snapshot."""
        op = Operation(
            op_id=note.id,
            op_type=note.type,
            customer_id=None,
            at=note.created_second,
            source=events.arrived_by(message.attributes),
            trace_id=trace_id,
        )
        result = self.applier.apply(op, None).result
        kind = "duplicate" if result.duplicate else "ignored"
        return Outcome(decision=kind, event_id=note.id, customer_id=None)

    def _apply(
        self,
        event: StripeEvent,
        message: IncomingMessage,
        trace_id: str,
        *,
        op_type: str | None = None,
    ) -> Outcome:
        customer_id = admit(event, now=self._clock())
        op = Operation(
            op_id=event.id,
            # A thin notification's own type, so the history says how the change arrived.
            op_type=op_type or event.type,
            customer_id=customer_id,
            at=event.created,
            source=events.arrived_by(message.attributes),
            trace_id=trace_id,
        )

        def decide(record: Any) -> statemachine.Decision:
            return statemachine.decide(record, event, self._policy)

        try:
            result = self.applier.apply(op, decide if customer_id else None).result
        except pydantic.ValidationError as exc:
            # The domain could not read the event's object: retrying will not change it.
            raise InvalidPayload(_summarise(exc)) from exc
        if result.decision is not None and result.decision.kind == "anomaly":
            anomaly = result.decision.anomaly
            get_logger(
                component="subscriber",
                event_id=event.id,
                event_type=event.type,
                customer_id=customer_id,
                trace_id=trace_id,
                project=self._project,
            ).warning(
                "anomaly_recorded",
                anomaly_code=anomaly.code if anomaly else "unknown",
                detail=anomaly.detail if anomaly else result.decision.reason,
            )
        if result.duplicate:
            kind = "duplicate"
        elif result.decision is None:
            kind = "ignored"
        else:
            kind = result.decision.kind
        transition = result.decision.transition if result.decision else None
        return Outcome(
            decision=kind,
            event_id=event.id,
            customer_id=customer_id,
            version=result.decision.record.version if result.decision else None,
            from_status=transition.source if transition else None,
            to_status=transition.dest if transition else None,
        )

    def _dead_letter(
        self,
        message: IncomingMessage,
        event: StripeEvent | ThinEventNotification | None,
        exc: PermanentError,
        log: Any,
        *,
        must_record: bool = True,
    ) -> Outcome:
        """Publish to the dead-letter topic, record in failures/, log; the caller acks.

        Without `must_record`, a failure record that cannot be written (Firestore is
        often what failed) is logged instead of raised: the dead letter on the topic
        already carries the reason, and raising would only publish it a second time.
        """
        reason = str(exc)[:_MAX_REASON]
        key = storable_key(event.id if event else f"msg-{message.message_id or 'unknown'}")
        now = time.time()
        attributes = dict(message.attributes)
        attributes.update(
            {
                events.DEAD_LETTER_REASON_CODE: exc.reason_code,
                events.DEAD_LETTER_REASON: _fit_attribute(reason),
                events.DEAD_LETTERED_AT: str(int(now)),
                events.DEAD_LETTERED_BY: "subscriber",
                events.FAILURE_KEY: key,
            }
        )
        # Publish first: if it fails we raise, the message is redelivered, nothing is lost.
        self._publisher.publish(self._dead_letter_topic, message.data, attributes=attributes)
        record = FailureRecord(
            event_id=key,
            event_type=event.type if event else message.attributes.get(events.EVENT_TYPE),
            customer_id=event.customer_id if event else message.attributes.get(events.CUSTOMER_ID),
            reason_code=exc.reason_code,
            reason=reason,
            first_failed_at=now,
            last_failed_at=now,
            dead_lettered=True,
        )
        try:
            self._repo.record_failure(record)
        except Exception:
            if must_record:
                raise
            log.error("failure_record_unavailable", failure_key=key, exc_info=True)
        log.error("event_failed", reason_code=exc.reason_code, transient=False, reason=reason)
        return Outcome(
            decision="dead_lettered",
            event_id=event.id if event else None,
            customer_id=event.customer_id if event else None,
        )

    def _is_last_attempt(self, message: IncomingMessage) -> bool:
        attempt = message.delivery_attempt
        return (
            self._last_attempt is not None
            and attempt is not None
            and (attempt >= self._last_attempt)
        )

    def _give_up(
        self,
        message: IncomingMessage,
        event: StripeEvent | ThinEventNotification | None,
        exc: Exception,
        log: Any,
    ) -> Outcome:
        """Dead-letter explicitly (publish with reason, record, ack), or raise transient."""
        exhausted = RetriesExhausted(
            f"gave up after {message.delivery_attempt} attempts: {type(exc).__name__}: {exc}"
        )
        try:
            return self._dead_letter(message, event, exhausted, log, must_record=False)
        except Exception as route_exc:
            log.error("dead_letter_failed", reason=f"{type(route_exc).__name__}: {route_exc}")
            self._raise_transient(message, event, exc, log)

    def dead_letter_undecodable(self, message: IncomingMessage, exc: PermanentError) -> Outcome:
        log = get_logger(component="subscriber", project=self._project)
        return self._dead_letter(message, None, exc, log)

    def _raise_transient(
        self,
        message: IncomingMessage,
        event: StripeEvent | ThinEventNotification | None,
        exc: Exception,
        log: Any,
    ) -> NoReturn:
        self._note_transient_failure(message, event, exc, log)
        if isinstance(exc, TransientError):
            raise exc
        raise TransientError(f"unexpected {type(exc).__name__}: {exc}") from exc

    def _note_transient_failure(
        self,
        message: IncomingMessage,
        event: StripeEvent | ThinEventNotification | None,
        exc: Exception,
        log: Any,
    ) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:_MAX_REASON]
        log.error(
            "event_failed",
            reason_code="transient",
            transient=True,
            attempt=message.delivery_attempt,
            reason=reason,
            exc_info=not isinstance(exc, TransientError),
        )
        now = time.time()
        try:
            self._repo.record_failure(
                FailureRecord(
                    event_id=storable_key(
                        event.id if event else f"msg-{message.message_id or 'unknown'}"
                    ),
                    event_type=event.type if event else None,
                    customer_id=event.customer_id if event else None,
                    reason_code="transient",
                    reason=reason,
                    first_failed_at=now,
                    last_failed_at=now,
                )
            )
        except Exception:
            # Firestore itself may be what is down; the log line above is the record then.
            log.warning("failure_record_unavailable", exc_info=True)


def _summarise(exc: pydantic.ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]]
    return f"{exc.title} invalid: " + "; ".join(parts)
