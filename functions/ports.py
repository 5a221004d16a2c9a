"""Every port: the small Protocols services depend on, and the values they exchange.

Each has one real adapter in functions/adapters/ and a fake in tests/support/; the
contract suites in tests/integration/ run the same tests against both.

The billing repository: every state change goes through `apply`.

`apply` runs one transaction that (1) creates the idempotency marker for the operation id,
(2) lets the pure domain decide from the current record, (3) stores the new record, an
audit entry and, when entitlements changed, an outbox entry. If the marker already exists
nothing is written and the result says `duplicate`. The decide callback may run more than
once (transaction retries), so it must be pure: it is, it is the domain.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from functions import stripe_events as events
from schemas.documents import (
    AccountLink,
    AuditRecord,
    BillingRecord,
    FailureRecord,
    HistoryEntry,
    OutboxEntry,
)

if TYPE_CHECKING:
    # Request types only (TypedDicts generated for the pinned API version), never loaded at
    # run time: services stay free of the client library, and mypy checks every parameter.
    from stripe.params import (
        CustomerCreateParams,
        PriceCreateParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
        SubscriptionScheduleCreateParams,
        SubscriptionScheduleUpdateParams,
        SubscriptionUpdateParams,
        WebhookEndpointCreateParams,
        WebhookEndpointUpdateParams,
    )
    from stripe.params.billing_portal import ConfigurationUpdateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams
from schemas.stripe import customer_id_of
from statemachine import account_taken, entitlement_message
from statemachine.decision import Decision

Source = Literal["webhook", "replay", "catch_up", "reconcile", "override", "reevaluate"]
DecideFn = Callable[[BillingRecord], Decision]


def new_trace_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Operation:
    """One idempotent unit of work: a Stripe event or an operator action."""

    op_id: str  # Stripe event id, or a generated id for operator actions
    op_type: str  # Stripe event type, or e.g. "ops.override"
    customer_id: str | None
    at: int  # epoch seconds the domain treats as "now" (the event's created)
    source: Source = "webhook"
    # W3C trace id: the webhook's trace when the work came from Stripe; otherwise a new one,
    # so every downstream message of a reconcile, override or re-evaluation is traceable.
    trace_id: str = field(default_factory=new_trace_id)


@dataclass(frozen=True)
class ApplyResult:
    duplicate: bool
    decision: Decision | None  # None when duplicate or when there is no customer
    # Every unsent outbox entry of the customer right after the commit, oldest first, when
    # the transaction could prove the list complete; None when it could not (the relay then
    # reads the outbox). Proof: relays mark versions sent in order, so once the newest
    # entry before this transaction is sent, every older one is too.
    pending: tuple[OutboxEntry, ...] | None = None


def history_entry(op: Operation, before: BillingRecord, decision: Decision) -> HistoryEntry:
    """The audit entry every adapter appends for an applied operation."""
    return HistoryEntry(
        event_id=op.op_id,
        event_type=op.op_type,
        from_status=before.status,
        to_status=decision.record.status,
        decision=decision.kind,
        reason=decision.reason,
        trigger=decision.transition.trigger if decision.transition else None,
        version=decision.record.version,
        at=op.at,
        source=op.source,
    )


def first_link_wins(
    op: Operation, current: BillingRecord, decision: Decision, owner: str | None
) -> Decision:
    """What to commit when `decision` links its account and `owner` holds that link.

    Every adapter reads the link in the same transaction as the record and calls this:
    a link another customer holds stays theirs and the decision becomes an anomaly.
    """
    if owner is None or owner == op.customer_id:
        return decision
    return account_taken(current, decision, owner, op.at, (op.op_id, op.op_type))


def outbox_entry(op: Operation, record: BillingRecord) -> OutboxEntry:
    """The entitlement-changed message to relay for the record's (new) version."""
    created = time.time()
    message = entitlement_message(
        record, op.op_id, op.at, published_at=int(created), trace_id=op.trace_id
    )
    return OutboxEntry(
        customer_id=record.customer_id,
        version=record.version,
        payload=message.model_dump(mode="json"),
        causing_event_id=op.op_id,
        created_at=created,
        trace_id=op.trace_id,
    )


class BillingRepository(Protocol):
    def apply(self, op: Operation, decide: DecideFn | None, *, marker_ttl_days: int) -> ApplyResult:
        """Apply `decide` to the customer's record exactly once per `op.op_id`.

        `decide` is None for events that concern no customer (marker only).
        Raises TransientError on contention or unavailability.
        """
        ...

    def get_record(self, customer_id: str) -> BillingRecord | None: ...

    def customer_for_account(self, account_id: str) -> str | None: ...

    def get_records(self, customer_ids: Sequence[str]) -> dict[str, BillingRecord]:
        """The records that exist among `customer_ids`, in one round trip."""
        ...

    def customers_for_accounts(self, account_ids: Sequence[str]) -> dict[str, str]:
        """account id -> linked customer id, for the linked ones, in one round trip."""
        ...

    def records_page(self, after: str | None, limit: int) -> list[BillingRecord]:
        """Records ordered by customer id, starting after `after`: for paged listing."""
        ...

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]: ...

    def pending_outbox(self, customer_id: str) -> list[OutboxEntry]:
        """Unsent outbox entries of one customer, oldest version first."""
        ...

    def mark_sent(self, customer_id: str, version: int, sent_at: float) -> None: ...

    def stale_outbox(self, older_than: float, limit: int = 500) -> list[OutboxEntry]:
        """Unsent entries of any customer created before `older_than` (the sweep)."""
        ...

    def is_processed(self, event_id: str) -> bool: ...

    def record_failure(self, failure: FailureRecord) -> FailureRecord:
        """Upsert by event id, counting attempts; returns what is stored."""
        ...

    def get_failure(self, event_id: str) -> FailureRecord | None: ...

    def list_failures(self, limit: int = 100) -> list[FailureRecord]: ...

    def list_customers(self, limit: int | None = None) -> list[BillingRecord]: ...

    def due_for_review(self, now: int, limit: int = 1000) -> list[str]:
        """Customers whose access may change with time alone: grace, access or override
        deadline at or before `now`. May include ones already re-evaluated (cheap noop)."""
        ...

    def with_open_anomalies(self, limit: int = 100) -> list[str]:
        """Customers with an open anomaly, the longest-open first."""
        ...


# -- Pub/Sub ------------------------------------------------------------------------------


class Publisher(Protocol):
    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        attributes: Mapping[str, str],
        ordering_key: str = "",
        timeout: float = 10.0,
    ) -> str:
        """Publish and wait for the server's ack; returns the message id.

        Raises TransientError on any failure: the caller answers so the message is retried.
        """
        ...


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
            self.attributes.get(events.EVENT_ID)
            or self._envelope().get("id")
            or self.attributes.get(events.FAILURE_KEY)
            or f"msg-{self.message_id}"
        )

    @property
    def event_type(self) -> str | None:
        return self.attributes.get(events.EVENT_TYPE) or self._envelope().get("type")

    @property
    def customer_id(self) -> str | None:
        if self.attributes.get(events.CUSTOMER_ID):
            return self.attributes[events.CUSTOMER_ID]
        data = self._envelope().get("data")
        return customer_id_of(data.get("object") if isinstance(data, dict) else None)

    @property
    def created(self) -> int | None:
        """The Stripe event's own creation time, when the body can be read."""
        stamp = self.attributes.get(events.CREATED, "")
        if stamp.isdigit():
            return int(stamp)
        value = self._envelope().get("created")
        return value if isinstance(value, int) else None

    @property
    def reason_code(self) -> str:
        if events.DEAD_LETTER_REASON_CODE in self.attributes:
            return self.attributes[events.DEAD_LETTER_REASON_CODE]
        # Forwarded by Pub/Sub's policy: the subscriber kept failing transiently.
        return "max_attempts" if events.SOURCE_DELIVERY_COUNT in self.attributes else "unknown"

    @property
    def reason(self) -> str:
        return self.attributes.get(events.DEAD_LETTER_REASON, "")

    @property
    def delivery_attempts(self) -> int | None:
        count = self.attributes.get(events.SOURCE_DELIVERY_COUNT)
        return int(count) if count and count.isdigit() else None

    @property
    def dead_lettered_at(self) -> float:
        stamp = self.attributes.get(events.DEAD_LETTERED_AT, "")
        return float(stamp) if stamp.isdigit() else self.published_at

    def _envelope(self) -> dict[str, Any]:
        # Best effort: an undecodable body is exactly the kind of thing that lands here.
        try:
            parsed = events.loads(self.data)
        except (ValueError, UnicodeDecodeError, RecursionError):
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


class DeadLetterQueue(Protocol):
    """A lease-based view of the dead-letter topic's ops subscription.

    Reading leases: whatever is leased must be acked (done with) or released (handed back
    at once), so nothing is lost when a command ends early.
    """

    @property
    def path(self) -> str: ...

    def lease_all(self, limit: int = 10_000) -> list[DeadLetter]: ...

    def ack(self, messages: Iterable[DeadLetter]) -> None: ...

    def release(self, messages: Iterable[DeadLetter]) -> None: ...


# -- Firestore, beside the billing records -------------------------------------------------


class AccountStore(Protocol):
    def get(self, account_id: str) -> AccountLink | None: ...

    def link(self, account_id: str, customer_id: str, now: int) -> AccountLink:
        """Creates the link unless one exists; returns whichever link is stored."""
        ...

    def mark_trial_used(self, account_id: str) -> None: ...


class AuditLog(Protocol):
    """The operator audit: who did what to which target, why, and when."""

    def write(self, record: AuditRecord) -> AuditRecord: ...

    def list(
        self, *, target: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[AuditRecord]: ...


# -- Stripe -------------------------------------------------------------------------------


class StripeGateway(Protocol):
    """What our code needs from Stripe. Requests are the SDK's `stripe.params` types for the
    pinned API version, so a parameter that version lacks is a type error, not a 400."""

    # Catalog
    def list_products(self) -> list[dict[str, Any]]: ...
    def create_product(
        self, params: ProductCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def update_product(self, product_id: str, params: ProductUpdateParams) -> dict[str, Any]: ...
    def list_prices(
        self, *, lookup_keys: Sequence[str] | None = None, product: str | None = None
    ) -> list[dict[str, Any]]: ...
    def create_price(
        self, params: PriceCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def update_price(self, price_id: str, params: PriceUpdateParams) -> dict[str, Any]: ...

    # Customers and sessions
    def create_customer(
        self, params: CustomerCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def create_checkout_session(
        self, params: CheckoutSessionCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def create_portal_session(
        self, params: PortalSessionCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    # Subscriptions
    def list_customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]: ...
    def update_subscription(
        self, subscription_id: str, params: SubscriptionUpdateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def create_subscription_schedule(
        self, params: SubscriptionScheduleCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def update_subscription_schedule(
        self, schedule_id: str, params: SubscriptionScheduleUpdateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    def release_subscription_schedule(
        self, schedule_id: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    # Events (on-call: what Stripe failed to deliver to our webhook)
    def list_undelivered_events(self, created_gte: int) -> list[dict[str, Any]]: ...

    # Thin events: the current state of a notification's related object
    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]: ...
    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]: ...
    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]: ...
    def retrieve_thin_event(self, event_id: str) -> dict[str, Any]:
        """The v2 event (GET /v2/core/events/{id}): `snapshot_event` names its v1 twin."""
        ...

    # Configuration as code: our webhook endpoint and the Billing Portal configuration
    def list_webhook_endpoints(self) -> list[dict[str, Any]]: ...
    def create_webhook_endpoint(
        self, params: WebhookEndpointCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]: ...
    def update_webhook_endpoint(
        self, endpoint_id: str, params: WebhookEndpointUpdateParams
    ) -> dict[str, Any]: ...
    def list_portal_configurations(self) -> list[dict[str, Any]]: ...
    def update_portal_configuration(
        self, configuration_id: str, params: ConfigurationUpdateParams
    ) -> dict[str, Any]: ...
