"""Request bodies of the checkout, portal and plan-change functions.

Plans and add-ons are checked against the catalog handed in the validation context
(`model_validate(body, context={"catalog": ...})`): the catalog is domain data, and a
request validated without one is refused rather than accepted unchecked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.catalog import Catalog
from schemas.ids import ACCOUNT_ID_PATTERN


def _catalog(info: ValidationInfo) -> Catalog:
    catalog = (info.context or {}).get("catalog")
    if not isinstance(catalog, Catalog):
        raise ValueError("validated without a catalog in the context")
    return catalog


class AccountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str = Field(pattern=ACCOUNT_ID_PATTERN)


class PortalRequest(AccountRequest):
    pass


class SubscriptionRequest(AccountRequest):
    """The whole desired subscription: a plan, add-ons (no duplicates) and extra seats."""

    plan: str
    add_ons: tuple[str, ...] = ()
    seats: int = Field(default=0, ge=0, le=500, description="extra seats beyond the plan's")

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str, info: ValidationInfo) -> str:
        plans = [p.id for p in _catalog(info).plans]
        if value not in plans:
            raise ValueError(f"unknown plan; expected one of {plans}")
        return value

    @field_validator("add_ons")
    @classmethod
    def _known_add_ons(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        catalog = _catalog(info)
        allowed = {a.id for a in catalog.add_ons if not a.per_unit}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown add-ons {unknown}; seats go in 'seats'")
        if len(set(value)) != len(value):
            raise ValueError("add-ons must not repeat")
        return tuple(sorted(value))


class CheckoutRequest(SubscriptionRequest):
    pass


class ChangeRequest(SubscriptionRequest):
    pass
