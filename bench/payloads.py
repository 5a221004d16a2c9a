"""Stripe event envelopes for the bench, built from real Stripe object shapes.

Objects start from the shared fixture shapes (every field Stripe sends, placeholder
values) so sizes and parse costs are realistic. Padding goes where big events really
grow: the invoice's line items (one per metered line, ~1 KB each), so a padded event is
still a valid invoice event that the domain and the webhook accept.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from infra.local.stripe_fixtures import resources

API_VERSION = "2025-03-31.basil"
PERIOD = 30 * 86400


def _shape(kind: str) -> dict[str, Any]:
    return copy.deepcopy(resources()[kind])


def envelope(event_id: str, event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def subscription(
    customer: str, sub_id: str, status: str, lookup_key: str, created: int, at: int
) -> dict[str, Any]:
    sub = _shape("subscription")
    item = sub["items"]["data"][0]
    item.update(
        id=f"si_{sub_id[4:]}",
        subscription=sub_id,
        current_period_start=at,
        current_period_end=at + PERIOD,
        quantity=1,
    )
    item["price"].update(id=f"price_{lookup_key}", lookup_key=lookup_key)
    sub["items"]["data"] = [item]
    sub["items"]["has_more"] = False
    sub.update(
        id=sub_id,
        customer=customer,
        status=status,
        created=created,
        start_date=created,
        cancel_at=None,
        canceled_at=None,
        ended_at=None,
        cancel_at_period_end=False,
        trial_end=None,
        latest_invoice=None,
        metadata={},
    )
    return sub


def invoice(customer: str, invoice_id: str, sub_id: str, at: int, lines: int = 1) -> dict[str, Any]:
    inv = _shape("invoice")
    line = _shape("line_item")
    inv["lines"]["data"] = [
        {**line, "id": f"il_{invoice_id[3:]}_{n}", "invoice": invoice_id} for n in range(lines)
    ]
    inv["lines"]["has_more"] = False
    inv.update(
        id=invoice_id,
        customer=customer,
        status="paid",
        billing_reason="subscription_cycle",
        created=at,
        attempt_count=1,
        next_payment_attempt=None,
        period_end=at,
        subscription=None,
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": sub_id, "metadata": {}},
        },
    )
    return inv


def padded_invoice_event(
    event_id: str, customer: str, target_bytes: int, at: int
) -> dict[str, Any]:
    """invoice.paid for `customer`, about `target_bytes` long once encoded.

    Below the full invoice shape (~6 KB) the object keeps only the fields a thin
    integration reads; above it, line items are added until the size is reached.
    """
    sub_id = f"sub_{customer[4:]}"
    invoice_id = f"in_{event_id[4:]}"
    full = invoice(customer, invoice_id, sub_id, at)
    event = envelope(event_id, "invoice.paid", full, at)
    base = len(encode(event))
    if target_bytes < base:
        keep = [
            *("id", "object", "customer", "status", "billing_reason", "created", "currency"),
            *("attempt_count", "next_payment_attempt", "period_end", "parent", "livemode"),
            *("amount_due", "amount_paid", "amount_remaining"),
        ]
        event["data"]["object"] = {k: full[k] for k in keep if k in full}
        return event
    two = len(
        encode(envelope(event_id, "invoice.paid", invoice(customer, invoice_id, sub_id, at, 2), at))
    )
    per_line = two - base
    lines = 1 + max(0, (target_bytes - base) // per_line)
    event["data"]["object"] = invoice(customer, invoice_id, sub_id, at, lines=lines)
    return event


def encode(event: dict[str, Any]) -> bytes:
    # Stripe sends pretty-printed JSON with two-space indents; keep the byte count honest.
    return json.dumps(event, indent=2).encode()
