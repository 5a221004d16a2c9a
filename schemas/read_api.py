"""Requests and answers of the current-entitlements read API (`GET /v1/entitlements/...`).

Each entitlement in an answer is a `CurrentEntitlements` (schemas/entitlements.py), the
same state and `version` the entitlement-changed stream carries.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.entitlements import CurrentEntitlements

# Ids we accept in a path, a body or a page token: what Firestore can key and Stripe or
# we can mint. The entry point's routes match the same pattern.
ID_PATTERN = r"[A-Za-z0-9_-]{1,255}"
Id = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]


class BatchGetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_ids: tuple[Id, ...] = ()
    customer_ids: tuple[Id, ...] = ()

    @model_validator(mode="after")
    def _some(self) -> BatchGetRequest:
        if not self.account_ids and not self.customer_ids:
            raise ValueError("name at least one account_id or customer_id")
        return self


class NotFound(BaseModel):
    account_ids: list[str] = Field(default_factory=list)
    customer_ids: list[str] = Field(default_factory=list)


class BatchGetResponse(BaseModel):
    entitlements: list[CurrentEntitlements]
    not_found: NotFound


class EntitlementsPage(BaseModel):
    entitlements: list[CurrentEntitlements]
    # Pass back as ?page_token= for the next page; null: this was the last page.
    next_page_token: str | None
