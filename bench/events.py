"""Realistic per-customer event sequences for the subscriber, end-to-end and scaling runs.

Each customer lives through sign-up, a paid invoice, an upgrade, a failed renewal, the
recovery and a plan downgrade: the transitions that change entitlements most often.
Events of one customer are in `created` order, as Pub/Sub's ordering key delivers them.
"""

from __future__ import annotations

from typing import Any

from bench.payloads import envelope, invoice, subscription

Event = dict[str, Any]
STARTER = "dataface_starter_monthly"
TEAM = "dataface_team_monthly"
BUSINESS = "dataface_business_monthly"


def customer_story(customer: str, start: int, tag: str = "") -> list[Event]:
    """Six events for one customer, ids unique per (customer, tag)."""
    sub_id = f"sub_{customer[4:]}"
    key = f"{customer[4:]}{tag}"

    def sub_event(n: int, kind: str, status: str, plan: str) -> Event:
        at = start + n * 60
        obj = subscription(customer, sub_id, status, plan, created=start, at=start)
        return envelope(f"evt_{key}_{n}", f"customer.subscription.{kind}", obj, at)

    def invoice_event(n: int, kind: str) -> Event:
        at = start + n * 60
        inv = invoice(customer, f"in_{key}_{n}", sub_id, at)
        if kind == "invoice.payment_failed":
            inv.update(status="open", attempt_count=1, next_payment_attempt=at + 86400)
        return envelope(f"evt_{key}_{n}", kind, inv, at)

    return [
        sub_event(0, "created", "active", TEAM),
        invoice_event(1, "invoice.paid"),
        sub_event(2, "updated", "active", BUSINESS),
        sub_event(3, "updated", "past_due", BUSINESS),
        invoice_event(4, "invoice.paid"),
        sub_event(5, "updated", "active", STARTER),
    ]


def plan_flip(customer: str, start: int, n: int, tag: str) -> Event:
    """One subscription.updated alternating plans: an entitlement change every time."""
    sub_id = f"sub_{customer[4:]}"
    plan = TEAM if n % 2 else BUSINESS
    at = start + n
    obj = subscription(customer, sub_id, "active", plan, created=start - 86400, at=at)
    return envelope(f"evt_{tag}_{n}", "customer.subscription.updated", obj, at)
