"""The states table: one row per subscription state, read by humans and by the code.

Each row says what the customer may use (access level), what we tell them (message code
and text) and what an operator sees. Variants that depend on facts beyond the status
(cancel at period end, grace expiry, payment confirmation, an operator override) live in
`MESSAGES` and are chosen by `view()`, so every customer-facing sentence is in this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.documents import BillingRecord, BillingStatus
from schemas.entitlements import AccessLevel, AccountMessage

TERMINAL: frozenset[str] = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class StateRow:
    status: BillingStatus
    access: AccessLevel
    message_code: str
    operator_view: str
    terminal: bool = False


STATES: tuple[StateRow, ...] = (
    StateRow("none", AccessLevel.NONE, "no_subscription", "No subscription yet."),
    StateRow(
        "incomplete",
        AccessLevel.NONE,
        "payment_incomplete",
        "Checkout started, first payment pending; Stripe expires it after 23 hours.",
    ),
    StateRow(
        "incomplete_expired",
        AccessLevel.NONE,
        "signup_expired",
        "First payment never completed; subscription is dead (terminal).",
        terminal=True,
    ),
    StateRow("trialing", AccessLevel.FULL, "trialing", "Free trial, full access."),
    StateRow("active", AccessLevel.FULL, "active", "Paying customer, full access."),
    StateRow(
        "past_due",
        AccessLevel.GRACE,
        "payment_failed",
        "Payment failed: full access until the grace deadline, then read-only.",
    ),
    StateRow(
        "unpaid",
        AccessLevel.NONE,
        "unpaid",
        "Retries exhausted, invoice open: access revoked until paid.",
    ),
    StateRow(
        "canceled",
        AccessLevel.NONE,
        "canceled",
        "Subscription ended (terminal); a new subscription starts over.",
        terminal=True,
    ),
    StateRow(
        "paused",
        AccessLevel.RESTRICTED,
        "paused",
        "Paused (trial ended without a card, paused by request or by dunning): "
        "monitors paused, data kept.",
    ),
)

STATE_BY_STATUS: dict[str, StateRow] = {row.status: row for row in STATES}

# Message texts; {date} is filled with the relevant deadline (UTC, YYYY-MM-DD).
MESSAGES: dict[str, str] = {
    "no_subscription": "Start your free 30-day trial to begin monitoring.",
    "payment_incomplete": "Your first payment has not completed yet. "
    "Complete it to start monitoring.",
    "payment_action_required": "Your bank asks you to confirm the payment. "
    "Confirm it to start monitoring.",
    "signup_expired": "Your signup payment did not complete in time. "
    "Start a new subscription to use Dataface.",
    "trialing": "Your free trial runs until {date}.",
    "active": "Your subscription is active.",
    "cancel_scheduled": "Your subscription ends on {date}. "
    "Renew before then to keep monitoring running.",
    "subscription_ended": "Your subscription has ended. Subscribe again to resume monitoring.",
    "payment_failed": "Your last payment failed. "
    "Update your card by {date} to keep monitoring running.",
    "payment_overdue": "Your payment is overdue and monitoring is paused. "
    "Update your card to resume.",
    "unpaid": "Your subscription is unpaid and access is suspended. "
    "Pay the open invoice to restore access.",
    "canceled": "Your subscription has ended. Subscribe again to resume monitoring.",
    "paused": "Your subscription is paused. "
    "Add a card or resume your subscription to restart monitoring; your data is kept.",
    "support_override": "Support has set your access until {date}.",
}


@dataclass(frozen=True)
class View:
    """What downstream sees for a record at one instant (before entitlements)."""

    access: AccessLevel
    message: AccountMessage
    grace_until: int | None
    access_until: int | None
    override_active: bool


def _date(ts: int | None) -> str:
    if ts is None:
        return "soon"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _message(code: str, when: int | None = None) -> AccountMessage:
    return AccountMessage(code=code, text=MESSAGES[code].format(date=_date(when)))


def grace_start(record: BillingRecord) -> int | None:
    """First failed payment of the streak, else when we first saw past_due."""
    return record.payment_failed_at or record.past_due_since


def view(record: BillingRecord, now: int, grace_seconds: int) -> View:
    """Access level and message for `record` at `now` (seconds), from the table above."""
    row = STATE_BY_STATUS[record.status]
    access = row.access
    code = row.message_code
    when: int | None = None
    grace_until = access_until = None
    if record.status == "trialing":
        when = record.trial_end
    elif record.status == "incomplete" and record.payment_action_required:
        code = "payment_action_required"
    elif record.status == "past_due":
        start = grace_start(record)
        grace_until = (start if start is not None else now) + grace_seconds
        if now >= grace_until:
            access, code, grace_until = AccessLevel.RESTRICTED, "payment_overdue", None
        else:
            when = grace_until
    if record.cancel_at_period_end or record.cancel_at:
        end = record.cancel_at or record.current_period_end
        if access in (AccessLevel.FULL, AccessLevel.GRACE) and end is not None:
            if now >= end:
                # Stripe's deletion event is due; do not keep serving past the paid period.
                access, code, grace_until = AccessLevel.NONE, "subscription_ended", None
            else:
                access_until = end
                if code in ("active", "trialing"):
                    code, when = "cancel_scheduled", end
    override = record.override
    if override is not None and now < override.expires_at:
        return View(
            access=override.access,
            message=_message("support_override", override.expires_at),
            grace_until=None,
            access_until=override.expires_at,
            override_active=True,
        )
    return View(access, _message(code, when), grace_until, access_until, False)
