"""What a customer may use: the entitlement-changed contract (v1) and the current-state read.

Contract for consumers (the README's "Downstream" section is the long form):
- Messages are published with ordering key = customer id; `version` increases by exactly
  one per change for that customer. Delivery is at-least-once, so a consumer keeps the
  highest version it applied per customer and ignores any message whose version is not
  higher. A gap means a message is still in flight, or read the current state.
- The read API (`GET /v1/entitlements/...`) returns `CurrentEntitlements` with the same
  `version` the stream carries, so a consumer mixes both by that one rule.
- v1 changes are additive: fields may be added, open vocabularies (features, message
  codes, limit names) may gain values. Readers must ignore unknown properties and treat an
  unknown feature as not granted. Closed vocabularies (`access`, `status`) never change
  within v1. `tests/unit/test_contract_compat.py` fails on anything else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.status import SubscriptionStatus

SCHEMA_VERSION: Final = "1"
# Message attribute set to "true" on the synthetic probe's messages (a customer who is not
# a customer): consumers drop them, or filter them out in their subscription.
SYNTHETIC_ATTRIBUTE: Final = "synthetic"

# Stripe's subscription statuses, plus "none" for a customer without a subscription yet.
Status = Literal["none", SubscriptionStatus]


class AccessLevel(StrEnum):
    FULL = "full"  # everything the plan grants
    GRACE = "grace"  # full access, but a payment problem must be fixed by a deadline
    RESTRICTED = "restricted"  # read-only: monitors paused, data kept
    NONE = "none"  # no access


ACCESS_MEANING: Final = {
    "full": "everything the plan and add-ons grant",
    "grace": "full access, but a payment failed: it degrades at grace_until unless paid",
    "restricted": "read-only: features is exactly ['read_only'], monitors paused, data kept",
    "none": "no access: features empty, every limit 0",
}

STATUS_MEANING: Final = {
    "none": "no subscription yet",
    "incomplete": "checkout started, first payment pending",
    "incomplete_expired": "first payment never completed (terminal)",
    "trialing": "free trial",
    "active": "paying",
    "past_due": "a payment failed; grace access until grace_until",
    "unpaid": "payment retries exhausted, access revoked until paid",
    "canceled": "subscription ended (terminal)",
    "paused": "paused; read-only",
}

# Open vocabularies: a value may be added within v1 (unknown feature = not granted).
FEATURE_MEANING: Final = {
    "freshness_monitoring": "table freshness monitors (every plan)",
    "volume_monitoring": "row-volume monitors (every plan)",
    "email_alerts": "alerts by email",
    "slack_alerts": "alerts to Slack (Team and up)",
    "pagerduty_alerts": "alerts to PagerDuty (Business)",
    "team_governance": "roles and audit for teams (Business)",
    "api_access": "the Dataface API (Business; see limits.api_requests_per_day)",
    "custom_rules": "custom data-quality rules (add-on; see limits.custom_rules)",
    "schema_change_detection": "schema-change detection (add-on)",
    "lineage_tracking": "lineage tracking (add-on)",
    "historical_alert_analysis": "historical alert analysis (add-on)",
    "read_only": "the only feature while access is restricted: view data, change nothing",
}

MESSAGE_CODE_MEANING: Final = {
    "no_subscription": "no subscription yet: offer the trial",
    "payment_incomplete": "first payment pending",
    "payment_action_required": "the bank asks the customer to confirm the payment (3DS)",
    "signup_expired": "the first payment never completed",
    "trialing": "in the free trial",
    "active": "subscription active",
    "cancel_scheduled": "ends at access_until (cancel at period end)",
    "subscription_ended": "the paid period is over",
    "payment_failed": "a payment failed: fix it before grace_until",
    "payment_overdue": "grace ran out: read-only until paid",
    "unpaid": "access suspended until the open invoice is paid",
    "canceled": "subscription ended",
    "paused": "paused: read-only",
    "support_override": "support set this access until override_until",
}

LIMIT_MEANING: Final = {
    "tables": "warehouse tables monitored",
    "custom_rules": "custom data-quality rules",
    "seats": "team members (plan seats plus extra seats)",
    "alert_channels": "alert destinations",
    "api_requests_per_day": "Dataface API requests per UTC day",
}


def _described(meanings: dict[str, str]) -> str:
    return "; ".join(f"{value}: {meaning}" for value, meaning in meanings.items())


def _open_vocabulary(meanings: dict[str, str]) -> dict[str, Any]:
    """Known values with their meaning, and any other string (a later v1 addition)."""
    return {
        "anyOf": [
            {"enum": list(meanings), "description": _described(meanings)},
            {"type": "string", "description": "a value added later within v1"},
        ]
    }


def _contract_config(
    title: str | None = None, json_schema_extra: dict[str, Any] | None = None
) -> ConfigDict:
    # Tolerant reader: consumers (and our own library) ignore properties added later. The
    # schema is of what we emit, so a field with a default is still always present.
    return ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_serialization_defaults_required=True,
        title=title,
        json_schema_extra=json_schema_extra,
    )


class _Contract(BaseModel):
    model_config = _contract_config()


class Limits(_Contract):
    model_config = _contract_config(
        json_schema_extra={"description": "0 means none allowed. " + _described(LIMIT_MEANING)}
    )

    tables: int = Field(ge=0)
    custom_rules: int = Field(ge=0)
    seats: int = Field(ge=0)
    alert_channels: int = Field(ge=0)
    api_requests_per_day: int = Field(ge=0)


class Entitlements(_Contract):
    plan: str | None = Field(default=None, description="catalog plan id; null: no plan")
    add_ons: tuple[str, ...] = ()
    features: tuple[str, ...] = Field(
        default=(), json_schema_extra={"items": _open_vocabulary(FEATURE_MEANING)}
    )
    limits: Limits


class AccountMessage(_Contract):
    code: str = Field(json_schema_extra=_open_vocabulary(MESSAGE_CODE_MEANING))
    text: str = Field(description="English sentence to show the customer as is")


class EntitlementState(_Contract):
    """What a customer may use now: the part the stream and the read API share."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    customer_id: str = Field(description="Stripe customer id; the ordering key")
    account_id: str | None = Field(
        description="Dataface account; null until the customer is linked, which is then "
        "announced by a new version carrying it"
    )
    version: int = Field(ge=0)
    status: Status = Field(description=_described(STATUS_MEANING))
    access: AccessLevel = Field(
        description="the authority for what to allow. " + _described(ACCESS_MEANING)
    )
    entitlements: Entitlements
    message: AccountMessage
    override_active: bool = False
    grace_until: int | None = Field(
        default=None, description="epoch seconds: when grace access degrades, if it will"
    )
    access_until: int | None = Field(
        default=None,
        description="epoch seconds: when the access described here ends: the cancel date, "
        "or while override_active the override's expiry (equal to override_until)",
    )
    override_until: int | None = Field(
        default=None, description="epoch seconds: when the support override ends, if active"
    )


class EntitlementChanged(EntitlementState):
    """entitlement-changed v1. Additive changes only; anything else is a v2 topic."""

    model_config = _contract_config(title="EntitlementChangedV1")

    version: int = Field(ge=1)
    causing_event_id: str
    effective_at: int = Field(description="epoch seconds of the causing Stripe event")
    published_at: int = Field(
        description="epoch seconds: when the producer committed this version for "
        "publishing; the same on every republish, so a version's bytes never change"
    )
    trace_id: str = Field(description="W3C trace id of the work that caused the change")


class CurrentEntitlements(EntitlementState):
    """`GET /v1/entitlements/...`: the state as of `version`, read from our record."""

    model_config = _contract_config(title="CurrentEntitlementsV1")

    version: int = Field(
        ge=0, description="the last version committed; 0: known customer, nothing granted yet"
    )
    updated_at: int = Field(description="epoch seconds the state was last evaluated at")
