"""Our Firestore documents. Field names here are the stored names.

Layout (collection/doc):
  customers/{stripe_customer_id}                BillingRecord
  customers/{id}/history/{event_id or op id}    HistoryEntry (append-only audit)
  customers/{id}/outbox/{version:012d}          OutboxEntry (entitlement-changed to relay)
  accounts/{account_id}                         AccountLink (our account -> customer)
  processed_events/{stripe_event_id}            ProcessedEvent (idempotency marker, TTL)
  failures/{stripe_event_id}                    FailureRecord (why an event failed)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.entitlements import AccessLevel, AccountMessage, Entitlements, Status

# Stripe's subscription statuses, plus "none" for a customer without a subscription yet.
BillingStatus = Status

DecisionKind = Literal["applied", "duplicate", "stale", "noop", "ignored", "anomaly"]


class _Doc(BaseModel):
    # Stored documents may gain fields over time; reading an older writer's doc must work.
    model_config = ConfigDict(extra="ignore")


class ItemSnapshot(_Doc):
    item_id: str
    price_id: str
    lookup_key: str | None = None
    # The price's `metadata.dataface_id` (set by catalog sync): recognises our price after
    # its lookup key moved to a newer price (grandfathered or archived prices).
    catalog_id: str | None = None
    quantity: int = 1


class Watermark(_Doc):
    """The newest Stripe evidence applied for the current subscription (ordering guard)."""

    subscription_id: str
    created: int
    event_id: str
    event_type: str
    status: str
    period_end: int | None = None


class Anomaly(_Doc):
    code: str
    detail: str
    event_id: str | None = None
    event_type: str | None = None
    at: int


class Override(_Doc):
    access: AccessLevel
    reason: str = Field(min_length=3)
    actor: str
    expires_at: int
    created_at: int


class BillingRecord(_Doc):
    customer_id: str
    account_id: str | None = None
    status: BillingStatus = "none"
    subscription_id: str | None = None
    # Stripe's `created` of the current subscription: orders subscriptions of one customer.
    subscription_created: int | None = None
    items: list[ItemSnapshot] = Field(default_factory=list)
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    current_period_end: int | None = None
    trial_end: int | None = None
    # Dunning: first failure of the current unpaid streak starts the grace clock.
    payment_failed_at: int | None = None
    failed_invoice_id: str | None = None
    last_paid_invoice_id: str | None = None
    payment_action_required: bool = False
    # When we first saw past_due: the grace clock if the payment_failed event is late.
    past_due_since: int | None = None
    # Recent paid invoices: a late payment_failed for any of them is stale.
    paid_invoice_ids: list[str] = Field(default_factory=list)
    watermark: Watermark | None = None
    recent_event_ids: list[str] = Field(default_factory=list)
    anomalies: list[Anomaly] = Field(default_factory=list)
    # When the oldest open anomaly was recorded (None: none open). Queried by the job that
    # reconciles anomalies within a minute; cleared with the anomalies by reconcile.
    anomaly_open_since: int | None = None
    override: Override | None = None
    # What was last published downstream (version 0 = nothing yet).
    version: int = 0
    access: AccessLevel = AccessLevel.NONE
    entitlements: Entitlements | None = None
    message: AccountMessage | None = None
    grace_until: int | None = None
    access_until: int | None = None
    override_active: bool = False
    updated_at: int = 0


class HistoryEntry(_Doc):
    event_id: str
    event_type: str
    from_status: str
    to_status: str
    decision: DecisionKind
    reason: str = ""
    trigger: str | None = None
    version: int
    at: int
    source: Literal["webhook", "replay", "catch_up", "reconcile", "override", "reevaluate"] = (
        "webhook"
    )


class OutboxEntry(_Doc):
    customer_id: str
    version: int
    payload: dict[str, object]
    causing_event_id: str
    created_at: float
    sent: bool = False
    sent_at: float | None = None
    trace_id: str | None = None


class AccountLink(_Doc):
    account_id: str
    customer_id: str
    linked_at: int
    trial_used: bool = False


class ProcessedEvent(_Doc):
    event_id: str
    event_type: str
    customer_id: str | None
    decision: DecisionKind
    processed_at: float
    expire_at: datetime  # Firestore TTL policy field: must be a timestamp


class FailureRecord(_Doc):
    event_id: str
    event_type: str | None = None
    customer_id: str | None = None
    reason_code: str
    reason: str
    attempts: int = 1
    first_failed_at: float
    last_failed_at: float
    dead_lettered: bool = False


class AuditRecord(BaseModel):
    """`ops_audit/{audit_id}`: one operator action (who, what, which target, why)."""

    model_config = ConfigDict(extra="ignore")

    audit_id: str
    actor: str
    action: str  # e.g. dlq.replay, dlq.purge, override.set, override.clear, reconcile
    target: str  # a customer id, an event id, or the queue name
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    at: float
