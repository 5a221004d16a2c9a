"""The simulator's own state: version-neutral records of what Stripe holds.

These are not Stripe's JSON. `shapes.py` renders them in the API version asked for, so
one state can be read as the pinned version, as 2020-08-27 or as the pre-Prices shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Shape = Literal["current", "2020-08-27", "pre_prices"]
AfterRetries = Literal["cancel", "unpaid", "past_due"]
MissingPaymentMethod = Literal["pause", "cancel", "create_invoice"]
Card = Literal["none", "ok", "declines"]
CollectionPause = Literal["keep_as_draft", "mark_uncollectible", "void"]
Proration = Literal["always_invoice", "create_prorations", "none"]

# Statuses that end a subscription for good.
TERMINAL = frozenset({"canceled", "incomplete_expired"})


class SimulatorError(Exception):
    """What Stripe would answer with a 400: the action is not possible in this state."""


@dataclass(frozen=True)
class Settings:
    """Account settings (Dashboard > Billing > Revenue recovery, Subscriptions and emails).

    retry_days: when automatic retries happen, in days after the first failed attempt
        (Stripe's custom schedule is entered as gaps; (3, 5, 7) is gaps of 3, 2, 2 days).
    after_retries: the subscription's fate once every retry failed.
    upcoming_days: days before a renewal that `invoice.upcoming` is sent (None: off).
    """

    retry_days: tuple[int, ...] = (3, 5, 7)
    after_retries: AfterRetries = "cancel"
    upcoming_days: int | None = 7
    currency: str = "usd"


@dataclass
class Product:
    id: str
    name: str
    metadata: dict[str, str]
    created: int
    default_price: str | None = None
    active: bool = True


@dataclass
class Price:
    id: str
    product: str
    unit_amount: int
    currency: str
    lookup_key: str | None
    nickname: str | None
    metadata: dict[str, str]
    created: int
    active: bool = True


@dataclass
class Customer:
    id: str
    account_id: str
    created: int
    email: str
    card: Card = "none"
    payment_method: str | None = None
    delinquent: bool = False
    invoice_prefix: str = ""
    next_invoice_sequence: int = 1


@dataclass
class Item:
    id: str
    price: str
    quantity: int
    created: int


@dataclass
class Line:
    id: str
    price: str
    quantity: int
    amount: int
    start: int
    end: int
    proration: bool
    item: str | None
    description: str


@dataclass
class Subscription:
    id: str
    customer: str
    status: str
    created: int
    items: list[Item]
    anchor: int
    period_start: int
    period_end: int
    metadata: dict[str, str]
    missing_payment_method: MissingPaymentMethod = "create_invoice"
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_reason: str | None = None
    latest_invoice: str | None = None
    schedule: str | None = None
    pause_collection: tuple[CollectionPause, int | None] | None = None
    # (why, when) while status is paused: Subscription.status_details.paused.
    paused: tuple[str, int] | None = None
    # Proration lines waiting for the next invoice (proration_behavior=create_prorations).
    pending: list[Line] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL


@dataclass
class Invoice:
    id: str
    customer: str
    subscription: str | None
    billing_reason: str
    created: int
    lines: list[Line]
    period_start: int
    period_end: int
    status: str = "draft"
    number: str | None = None
    attempt_count: int = 0
    attempted: bool = False
    auto_advance: bool = True
    finalizes_at: int | None = None
    next_payment_attempt: int | None = None
    first_failure: int | None = None
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    uncollectible_at: int | None = None
    # Automatic retries apply (renewals); off for signup, resume and manual attempts.
    retries: bool = True

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass
class Phase:
    start: int
    end: int
    items: tuple[tuple[str, int], ...]
    proration_behavior: Proration = "create_prorations"


@dataclass
class Schedule:
    id: str
    customer: str
    subscription: str
    phases: list[Phase]
    created: int
    current: int = 0
    status: str = "active"
    end_behavior: str = "release"
    released_at: int | None = None
    released_subscription: str | None = None
    canceled_at: int | None = None


@dataclass
class CheckoutSession:
    id: str
    customer: str
    account_id: str
    created: int
    expires_at: int
    trial_days: int
    payment_method_collection: str
    status: str = "open"
    payment_status: str = "unpaid"
    subscription: str | None = None
    amount_total: int = 0


@dataclass
class World:
    """Everything Stripe holds, keyed by id, in creation order."""

    settings: Settings
    products: dict[str, Product] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    sessions: dict[str, CheckoutSession] = field(default_factory=dict)
