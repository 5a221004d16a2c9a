"""The parts of Stripe's objects we read, tolerant of unknown fields and of API versions.

Older API versions put `current_period_start/end` on the subscription; current ones put
them on each subscription item. Older invoices carry `subscription` at the top level;
current ones under `parent.subscription_details.subscription`. Both are accepted and
exposed through one property each, so the domain never branches on API version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import ids
from schemas.catalog import MAX_ITEM_QUANTITY
from schemas.ids import (
    SUBSCRIPTION_ID_PATTERN,
    account_id_problem,
    customer_id_problem,
)
from schemas.status import SubscriptionStatus


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _id_of(value: object) -> str | None:
    """Stripe returns either an id or the expanded object for references."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        ref = value.get("id")
        return ref if isinstance(ref, str) else None
    raise ValueError("expected an id string or an object with an id")


# Stripe's event ids; the webhook and the subscriber both hold an envelope to this.
EVENT_ID_PATTERN = ids.EVENT_ID_PATTERN


def _customer(value: str | None) -> str | None:
    problem = None if value is None else customer_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _account(value: str | None) -> str | None:
    problem = None if value is None else account_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _metadata_account(metadata: dict[str, str]) -> dict[str, str]:
    # The domain links the account a subscription or session names: it becomes a key.
    _account(metadata.get("account_id"))
    return metadata


def customer_ref(obj: Any) -> object:
    """What an event's `data.object` names as its customer, unchecked: itself for a
    customer, else `customer` (an id, an expanded object's id, or whatever was sent)."""
    if not isinstance(obj, dict):
        return None
    if obj.get("object") == "customer":
        return obj.get("id")
    ref = obj.get("customer")
    return ref.get("id") if isinstance(ref, dict) else ref


def customer_id_of(obj: Any) -> str | None:
    """The Stripe customer an event's `data.object` is about: itself for a customer."""
    if not isinstance(obj, dict):
        return None
    if obj.get("object") == "customer":
        ref = obj.get("id")
        return ref if isinstance(ref, str) and ref else None
    try:
        return _id_of(obj.get("customer")) or None
    except ValueError:
        return None


class Price(_Tolerant):
    id: str
    lookup_key: str | None = None
    unit_amount: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class SubscriptionItem(_Tolerant):
    id: str
    price: Price
    # Bounded where the catalog is (schemas/catalog.py): -5 or 10**12 seats is refused.
    quantity: int = Field(default=1, ge=0, le=MAX_ITEM_QUANTITY)
    current_period_start: int | None = None
    current_period_end: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _plan_without_price(cls, value: Any) -> Any:
        # Items in the pre-Prices shape (old fixtures, test doubles such as localstripe)
        # carry only `plan`; a Plan has the id, lookup key and metadata we read of a Price.
        if isinstance(value, dict) and value.get("price") is None and value.get("plan"):
            return {**value, "price": value["plan"]}
        return value

    @field_validator("quantity", mode="before")
    @classmethod
    def _null_quantity(cls, value: object) -> object:
        # Metered prices report quantity null; they count as one unit of the feature.
        return 1 if value is None else value


class ItemList(_Tolerant):
    data: list[SubscriptionItem] = Field(default_factory=list)
    has_more: bool = False


class Subscription(_Tolerant):
    object: Literal["subscription"] = "subscription"
    id: str = Field(pattern=SUBSCRIPTION_ID_PATTERN)
    customer: str
    status: SubscriptionStatus
    created: int
    items: ItemList = Field(default_factory=ItemList)
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    trial_end: int | None = None
    latest_invoice: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # Older API versions only.
    current_period_start: int | None = None
    current_period_end: int | None = None

    _refs = field_validator("customer", "latest_invoice", mode="before")(
        classmethod(lambda cls, v: _id_of(v))
    )
    _checked = field_validator("customer")(classmethod(lambda cls, v: _customer(v)))
    _metadata_checked = field_validator("metadata")(
        classmethod(lambda cls, v: _metadata_account(v))
    )

    @property
    def period_end(self) -> int | None:
        ends = [i.current_period_end for i in self.items.data if i.current_period_end]
        if ends:
            return max(ends)
        return self.current_period_end


class InvoiceSubscriptionDetails(_Tolerant):
    subscription: str | None = None

    _refs = field_validator("subscription", mode="before")(classmethod(lambda cls, v: _id_of(v)))


class InvoiceParent(_Tolerant):
    subscription_details: InvoiceSubscriptionDetails | None = None


class _InvoiceFields(_Tolerant):
    object: Literal["invoice"] = "invoice"
    customer: str
    status: str | None = None
    billing_reason: str | None = None
    created: int
    attempt_count: int = 0
    next_payment_attempt: int | None = None
    period_end: int | None = None
    parent: InvoiceParent | None = None
    # Older API versions only.
    subscription: str | None = None

    _refs = field_validator("customer", "subscription", mode="before")(
        classmethod(lambda cls, v: _id_of(v))
    )
    _checked = field_validator("customer")(classmethod(lambda cls, v: _customer(v)))

    @property
    def subscription_id(self) -> str | None:
        if self.parent and self.parent.subscription_details:
            nested = self.parent.subscription_details.subscription
            if nested:
                return nested
        return self.subscription


class Invoice(_InvoiceFields):
    id: str


class UpcomingInvoice(_InvoiceFields):
    """`invoice.upcoming` previews an invoice that does not exist yet: it has no id."""

    id: str | None = None


class CheckoutSession(_Tolerant):
    object: Literal["checkout.session"] = "checkout.session"
    id: str
    customer: str | None = None
    client_reference_id: str | None = None
    subscription: str | None = None
    mode: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    _refs = field_validator("customer", "subscription", mode="before")(
        classmethod(lambda cls, v: _id_of(v))
    )
    _checked = field_validator("customer")(classmethod(lambda cls, v: _customer(v)))
    _reference_checked = field_validator("client_reference_id")(
        classmethod(lambda cls, v: _account(v))
    )
    _metadata_checked = field_validator("metadata")(
        classmethod(lambda cls, v: _metadata_account(v))
    )


class EventData(_Tolerant):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class EventRequest(_Tolerant):
    id: str | None = None
    idempotency_key: str | None = None


class StripeEvent(_Tolerant):
    """The event envelope. `data.object` stays a dict until the domain picks a model."""

    id: str = Field(pattern=EVENT_ID_PATTERN)
    object: Literal["event"] = "event"
    type: str = Field(min_length=1)
    created: int = Field(ge=0)
    livemode: bool
    api_version: str | None = None
    data: EventData
    request: EventRequest | None = None

    @field_validator("request", mode="before")
    @classmethod
    def _legacy_request(cls, value: Any) -> Any:
        # API versions before 2017-05-25 sent `request` as a bare id string.
        if isinstance(value, str):
            return {"id": value}
        return value

    @property
    def object_type(self) -> str | None:
        kind = self.data.object.get("object")
        return kind if isinstance(kind, str) else None

    @property
    def object_id(self) -> str | None:
        ref = self.data.object.get("id")
        return ref if isinstance(ref, str) else None

    @property
    def customer_id(self) -> str | None:
        """The Stripe customer this event is about, or None (for example a product event)."""
        return customer_id_of(self.data.object)
