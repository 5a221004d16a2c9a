"""What a customer may use, and the entitlement-changed contract (v1) for downstream.

Contract for consumers: messages are published with ordering key = customer id, and
`version` increases by exactly one per change for that customer. Delivery is
at-least-once (a relay that crashes after publishing republishes the same version), so a
consumer keeps the highest version it applied per customer and ignores any message whose
version is not higher. A gap (version jumps by more than one) means a message is still in
flight: the next redelivery fills it, or read the account's current state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = "1"


class AccessLevel(StrEnum):
    FULL = "full"  # everything the plan grants
    GRACE = "grace"  # full access, but a payment problem must be fixed by a deadline
    RESTRICTED = "restricted"  # read-only: monitors paused, data kept
    NONE = "none"  # no access


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: int = Field(ge=0)
    custom_rules: int = Field(ge=0)
    seats: int = Field(ge=0)
    alert_channels: int = Field(ge=0)
    api_requests_per_day: int = Field(ge=0)


class Entitlements(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    plan: str | None = None
    add_ons: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    limits: Limits


class AccountMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    text: str


class EntitlementChanged(BaseModel):
    """entitlement-changed v1. Additive changes only; anything else is a v2 topic."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="EntitlementChangedV1")

    schema_version: Literal["1"] = SCHEMA_VERSION
    customer_id: str
    account_id: str | None
    version: int = Field(ge=1)
    status: str
    access: AccessLevel
    entitlements: Entitlements
    message: AccountMessage
    override_active: bool = False
    grace_until: int | None = Field(
        default=None, description="epoch seconds: when grace access degrades, if it will"
    )
    access_until: int | None = Field(
        default=None, description="epoch seconds: when access ends (cancel at period end)"
    )
    causing_event_id: str
    effective_at: int = Field(description="epoch seconds of the causing Stripe event")
    published_at: int | None = Field(
        default=None, description="epoch seconds, set by the relay at publish time"
    )
    trace_id: str | None = None
