"""Stripe's JSON for the simulator's state, one shape function per API version.

`current` is the pinned version (functions/adapters/stripe_gateway.STRIPE_API_VERSION);
its field names are the SDK's typed classes for that version (stripe/_subscription.py,
_subscription_item.py, _invoice.py, _invoice_line_item.py, _price.py, _plan.py, ...), and
tests/unit/test_simulator.py checks every key against them.

Older versions differ only by Stripe's breaking changes (additive fields reach every
version, so they stay):
- `2020-08-27`: 2025-03-31.basil moved `current_period_start/end` from the subscription to
  its items, replaced `invoice.subscription` with `parent.subscription_details`, and
  replaced line items' `price`, `plan`, `proration`, `subscription_item`, `type` with
  `parent` and `pricing` (docs.stripe.com/changelog/basil/2025-03-31/...). This shape
  undoes those moves. Plans and recurring prices carry `aggregate_usage` (removed by basil)
  instead of `meter`.
- `pre_prices`: the 2020-08-27 shape without any `price` on items and lines (test doubles
  such as localstripe and old fixtures): only `plan`, with id, amount, interval, metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.simulator.objects import (
    CheckoutSession,
    Customer,
    Invoice,
    Line,
    Price,
    Product,
    Schedule,
    Shape,
    Subscription,
    World,
)

Json = dict[str, Any]
Model = Product | Price | Customer | Subscription | Invoice | Schedule | CheckoutSession

# The pinned version (a unit test keeps it equal to the gateway's STRIPE_API_VERSION).
CURRENT_API_VERSION = "2026-10-28.endive"
API_VERSIONS: dict[Shape, str] = {
    "current": CURRENT_API_VERSION,
    "2020-08-27": "2020-08-27",
    "pre_prices": "2019-12-03",
}
SUCCESS_URL = "https://app.dataface.test/billing/success"
CANCEL_URL = "https://app.dataface.test/billing/cancel"


# -- the pinned version ----------------------------------------------------------------


def _price(world: World, price: Price) -> Json:
    return {
        "id": price.id,
        "object": "price",
        "active": price.active,
        "billing_scheme": "per_unit",
        "created": price.created,
        "currency": price.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": price.lookup_key,
        "metadata": dict(price.metadata),
        "nickname": price.nickname,
        "product": price.product,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": price.unit_amount,
        "unit_amount_decimal": str(price.unit_amount),
    }


def _plan(world: World, price: Price) -> Json:
    """The Plan view of a Price (same id; Prices are backwards compatible with Plans)."""
    return {
        "id": price.id,
        "object": "plan",
        "active": price.active,
        "amount": price.unit_amount,
        "amount_decimal": str(price.unit_amount),
        "billing_scheme": "per_unit",
        "created": price.created,
        "currency": price.currency,
        "interval": "month",
        "interval_count": 1,
        "livemode": False,
        "metadata": dict(price.metadata),
        "meter": None,
        "nickname": price.nickname,
        "product": price.product,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def _product(world: World, product: Product) -> Json:
    return {
        "id": product.id,
        "object": "product",
        "active": product.active,
        "created": product.created,
        "default_price": product.default_price,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": dict(product.metadata),
        "name": product.name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": product.created,
        "url": None,
    }


def _customer(world: World, customer: Customer) -> Json:
    return {
        "id": customer.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": customer.created,
        "currency": world.settings.currency,
        "default_source": None,
        "delinquent": customer.delinquent,
        "description": None,
        "discount": None,
        "email": customer.email,
        "invoice_prefix": customer.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": customer.payment_method,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {"account_id": customer.account_id},
        "name": None,
        "next_invoice_sequence": customer.next_invoice_sequence,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _items(world: World, sub: Subscription) -> Json:
    data: list[Json] = [
        {
            "id": item.id,
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": item.created,
            "current_period_end": sub.period_end,
            "current_period_start": sub.period_start,
            "discounts": [],
            "metadata": {},
            "plan": _plan(world, world.prices[item.price]),
            "price": _price(world, world.prices[item.price]),
            "quantity": item.quantity,
            "subscription": sub.id,
            "tax_rates": [],
        }
        for item in sub.items
    ]
    url = f"/v1/subscription_items?subscription={sub.id}"
    return {"object": "list", "data": data, "has_more": False, "url": url}


def _status_details(sub: Subscription) -> Json | None:
    if sub.status != "paused" or sub.paused is None:
        return None
    why, at = sub.paused
    return {
        "paused": {"subscription": {"type": why}, "transitioned_at": at, "type": "subscription"}
    }


def _subscription(world: World, sub: Subscription) -> Json:
    pause = sub.pause_collection
    return {
        "id": sub.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": sub.anchor,
        "billing_cycle_anchor_config": None,
        # Flexible billing mode: the Pause endpoint requires it (docs.stripe.com/billing/
        # subscriptions/pause).
        "billing_mode": {"flexible": {"proration_discounts": "included"}, "type": "flexible"},
        "billing_thresholds": None,
        "cancel_at": sub.cancel_at,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "reason": sub.cancel_reason},
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": world.settings.currency,
        "customer": sub.customer,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": sub.ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": _items(world, sub),
        "latest_invoice": sub.latest_invoice,
        "livemode": False,
        "metadata": dict(sub.metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": {"behavior": pause[0], "resumes_at": pause[1]} if pause else None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": sub.schedule,
        "start_date": sub.created,
        "status": sub.status,
        "status_details": _status_details(sub),
        "test_clock": None,
        "transfer_data": None,
        "trial_end": sub.trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": sub.missing_payment_method}},
        "trial_start": sub.trial_start,
    }


def _line(world: World, line: Line, invoice: Invoice | None, sub_id: str | None) -> Json:
    price = world.prices[line.price]
    return {
        "id": line.id,
        "object": "line_item",
        "amount": line.amount,
        "currency": price.currency,
        "description": line.description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice.id if invoice else None,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": line.proration,
                "proration_details": {"credited_items": None},
                "subscription": sub_id,
                "subscription_item": line.item,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": line.end, "start": line.start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price.id, "product": price.product},
            "type": "price_details",
            "unit_amount_decimal": str(price.unit_amount),
        },
        "quantity": line.quantity,
        "subscription": sub_id,
        "subtotal": line.amount,
        "taxes": [],
    }


def _invoice(world: World, inv: Invoice, *, upcoming: bool = False) -> Json:
    customer = world.customers[inv.customer]
    paid = inv.total if inv.status == "paid" else 0
    sub = world.subscriptions.get(inv.subscription or "")
    obj: Json = {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Dataface",
        "amount_due": inv.total,
        "amount_overpaid": 0,
        "amount_paid": paid,
        "amount_remaining": inv.total - paid,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempted,
        "auto_advance": inv.auto_advance,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": inv.finalizes_at if inv.status == "draft" else None,
        "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": world.settings.currency,
        "customer": inv.customer,
        "customer_email": customer.email,
        "customer_name": None,
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": inv.finalized_at,
        "ending_balance": 0 if inv.finalized_at else None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [
                _line(world, ln, None if upcoming else inv, inv.subscription) for ln in inv.lines
            ],
            "has_more": False,
            "url": f"/v1/invoices/{inv.id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": inv.next_payment_attempt,
        "number": inv.number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub.metadata) if sub else {},
                "subscription": inv.subscription,
            },
            "type": "subscription_details",
        },
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {
            "finalized_at": inv.finalized_at,
            "marked_uncollectible_at": inv.uncollectible_at,
            "paid_at": inv.paid_at,
            "voided_at": inv.voided_at,
        },
        "subtotal": inv.total,
        "subtotal_excluding_tax": inv.total,
        "test_clock": None,
        "total": inv.total,
        "total_excluding_tax": inv.total,
        "webhooks_delivered_at": inv.created,
    }
    if upcoming:
        # "The received Invoice object will not have an invoice ID" (invoice.upcoming).
        del obj["id"]
        obj["lines"]["url"] = "/v1/invoices/upcoming/lines"
    return obj


def _schedule(world: World, sched: Schedule) -> Json:
    now_phase = sched.phases[sched.current] if sched.status == "active" else None
    return {
        "id": sched.id,
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {"flexible": {"proration_discounts": "included"}, "type": "flexible"},
        "canceled_at": sched.canceled_at,
        "completed_at": None,
        "created": sched.created,
        "current_phase": (
            {"end_date": now_phase.end, "start_date": now_phase.start} if now_phase else None
        ),
        "customer": sched.customer,
        "end_behavior": sched.end_behavior,
        "livemode": False,
        "metadata": {},
        "phases": [
            {
                "add_invoice_items": [],
                "application_fee_percent": None,
                "billing_cycle_anchor": None,
                "collection_method": None,
                "currency": world.settings.currency,
                "default_payment_method": None,
                "default_tax_rates": [],
                "description": None,
                "discounts": [],
                "end_date": phase.end,
                "invoice_settings": None,
                "items": [
                    {
                        "discounts": [],
                        "metadata": {},
                        "plan": price,
                        "price": price,
                        "quantity": qty,
                        "tax_rates": [],
                    }
                    for price, qty in phase.items
                ],
                "metadata": {},
                "on_behalf_of": None,
                "proration_behavior": phase.proration_behavior,
                "start_date": phase.start,
                "transfer_data": None,
                "trial_end": None,
            }
            for phase in sched.phases
        ],
        "released_at": sched.released_at,
        "released_subscription": sched.released_subscription,
        "status": sched.status,
        "subscription": sched.subscription if sched.status == "active" else None,
        "test_clock": None,
    }


def _session(world: World, session: CheckoutSession) -> Json:
    sub = world.subscriptions.get(session.subscription or "")
    return {
        "id": session.id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": session.amount_total,
        "amount_total": session.amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": CANCEL_URL,
        "client_reference_id": session.account_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": session.created,
        "currency": world.settings.currency,
        "custom_fields": [],
        "customer": session.customer,
        "customer_creation": None,
        "customer_details": {
            "address": None,
            "email": world.customers[session.customer].email,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": None,
        "expires_at": session.expires_at,
        "invoice": sub.latest_invoice if sub and session.status == "complete" else None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": {},
        "mode": "subscription",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": session.payment_method_collection,
        "payment_method_types": ["card"],
        "payment_status": session.payment_status,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": session.status,
        "submit_type": None,
        "subscription": session.subscription,
        "success_url": SUCCESS_URL,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{session.id}"
        if session.status == "open"
        else None,
    }


def current(world: World, obj: Model, *, upcoming: bool = False) -> Json:
    """The pinned API version."""
    if isinstance(obj, Subscription):
        return _subscription(world, obj)
    if isinstance(obj, Invoice):
        return _invoice(world, obj, upcoming=upcoming)
    if isinstance(obj, Customer):
        return _customer(world, obj)
    if isinstance(obj, Price):
        return _price(world, obj)
    if isinstance(obj, Product):
        return _product(world, obj)
    if isinstance(obj, Schedule):
        return _schedule(world, obj)
    return _session(world, obj)


# -- 2020-08-27 ------------------------------------------------------------------------


def _legacy_recurring(node: Json) -> None:
    node.pop("meter", None)
    node["aggregate_usage"] = None


def _legacy_line(world: World, line: Json) -> Json:
    details = line.pop("parent")["subscription_item_details"]
    price = world.prices[line.pop("pricing")["price_details"]["price"]]
    line.pop("pretax_credit_amounts")
    line.pop("taxes")
    line.pop("subtotal")
    plan = _plan(world, price)
    _legacy_recurring(plan)
    line["plan"] = plan
    line["price"] = _price(world, price)
    _legacy_recurring(line["price"]["recurring"])
    line["proration"] = details["proration"]
    line["subscription_item"] = details["subscription_item"]
    line["type"] = "subscription"
    return line


def v2020_08_27(world: World, obj: Model, *, upcoming: bool = False) -> Json:
    """Periods on the subscription, `invoice.subscription` at the top, old line items."""
    out = current(world, obj, upcoming=upcoming)
    if isinstance(obj, Subscription):
        out["current_period_start"], out["current_period_end"] = obj.period_start, obj.period_end
        for item in out["items"]["data"]:
            del item["current_period_start"], item["current_period_end"]
            _legacy_recurring(item["plan"])
            _legacy_recurring(item["price"]["recurring"])
    elif isinstance(obj, Invoice):
        del out["parent"]
        out["subscription"] = obj.subscription
        out["lines"]["data"] = [_legacy_line(world, ln) for ln in out["lines"]["data"]]
    elif isinstance(obj, Price):
        _legacy_recurring(out["recurring"])
    return out


# -- before Prices ---------------------------------------------------------------------


def pre_prices(world: World, obj: Model, *, upcoming: bool = False) -> Json:
    """The 2020-08-27 shape with `plan` only: no `price` on items, lines or phases."""
    if isinstance(obj, Price):
        plan = _plan(world, obj)
        _legacy_recurring(plan)
        return plan
    out = v2020_08_27(world, obj, upcoming=upcoming)
    if isinstance(obj, Subscription):
        for item in out["items"]["data"]:
            del item["price"]
    elif isinstance(obj, Invoice):
        for line in out["lines"]["data"]:
            del line["price"]
    elif isinstance(obj, Schedule):
        for phase in out["phases"]:
            for item in phase["items"]:
                del item["price"]
    return out


Renderer = Callable[..., Json]
SHAPES: dict[Shape, Renderer] = {
    "current": current,
    "2020-08-27": v2020_08_27,
    "pre_prices": pre_prices,
}


def render(world: World, obj: Model, shape: Shape, *, upcoming: bool = False) -> Json:
    return SHAPES[shape](world, obj, upcoming=upcoming)
