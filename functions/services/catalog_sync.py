"""Catalog as code: make Stripe's Products and Prices match statemachine/catalog.py.

Keys: a Product is ours by `metadata.dataface_id` (plan or add-on id) and
`metadata.dataface_kind`; a Price by its `lookup_key`, which is what checkout and the
subscriber resolve. Products are found with a list, not search, because search is
eventually consistent and could miss a product created seconds ago (creating it twice).

Prices are immutable in Stripe: when an amount, currency, interval or product changes we
create a new Price with `transfer_lookup_key=true` (the key moves atomically, so checkout
never sees a moment without a price) and then archive the old one (`active=false`). Prices
are never deleted: existing subscriptions keep billing on them.

A sync that finds nothing to change performs reads only. Creates carry an idempotency key
derived from the desired object, so a sync retried after a partial failure replays rather
than duplicates.

Trial: the 30-day trial is not a Price field (Price `recurring.trial_period_days` is
deprecated and ignored by Checkout); checkout passes `subscription_data.trial_period_days`
from the catalog, and each plan's Product records it in `metadata.dataface_trial_days` so
what Stripe shows matches what checkout grants.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from functions.ports import StripeGateway
from schemas.catalog import AddOn, Catalog, Plan

if TYPE_CHECKING:
    from stripe.params import (
        PriceCreateParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
    )

Action = Literal[
    "create_product", "update_product", "create_price", "update_price", "archive_price", "no_change"
]
WRITE_ACTIONS = frozenset(
    {"create_product", "update_product", "create_price", "update_price", "archive_price"}
)


@dataclass(frozen=True)
class Change:
    action: Action
    dataface_id: str
    lookup_key: str | None = None
    # Stripe object this change touches, when it exists already.
    stripe_id: str | None = None
    # The fields being written (for creates: the whole object) or compared.
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @property
    def is_write(self) -> bool:
        return self.action in WRITE_ACTIONS

    def describe(self) -> str:
        target = self.lookup_key or self.dataface_id
        ref = f" ({self.stripe_id})" if self.stripe_id else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.action:<15} {target}{ref}{why}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _kind(item: Plan | AddOn) -> str:
    return "plan" if isinstance(item, Plan) else "add_on"


def product_fields(item: Plan | AddOn, catalog: Catalog) -> dict[str, Any]:
    metadata = {"dataface_id": item.id, "dataface_kind": _kind(item)}
    if isinstance(item, Plan):
        metadata["dataface_rank"] = str(item.rank)
        metadata["dataface_trial_days"] = str(catalog.trial_days)
    return {"name": item.name, "metadata": metadata}


def price_fields(item: Plan | AddOn, catalog: Catalog) -> dict[str, Any]:
    return {
        "currency": catalog.currency,
        "unit_amount": item.monthly_amount_cents,
        "recurring": {"interval": "month", "interval_count": 1},
        "lookup_key": item.lookup_key,
        "nickname": item.name,
        "metadata": {"dataface_id": item.id, "dataface_kind": _kind(item)},
    }


def _idempotency_key(kind: str, ident: str, desired: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()[:24]
    return f"catalog-{kind}-{ident}-{digest}"


def _index_products(products: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    # Oldest first so a stray duplicate never displaces the product prices hang off.
    for product in sorted(products, key=lambda p: (p.get("created", 0), p["id"])):
        ident = (product.get("metadata") or {}).get("dataface_id")
        if ident and ident not in found:
            found[ident] = product
    return found


def _price_matches(price: dict[str, Any], desired: dict[str, Any], product_id: str) -> bool:
    recurring = price.get("recurring") or {}
    return (
        price.get("unit_amount") == desired["unit_amount"]
        and price.get("currency") == desired["currency"]
        and recurring.get("interval") == desired["recurring"]["interval"]
        and recurring.get("interval_count", 1) == desired["recurring"]["interval_count"]
        and price.get("product") == product_id
    )


def plan_sync(catalog: Catalog, gateway: StripeGateway) -> list[Change]:
    """Reads Stripe and returns the changes that would make it match `catalog`."""
    products = _index_products(gateway.list_products())
    items: list[Plan | AddOn] = [*catalog.plans, *catalog.add_ons]
    prices = {
        p["lookup_key"]: p
        for p in gateway.list_prices(lookup_keys=[i.lookup_key for i in items])
        if p.get("lookup_key")
    }
    changes: list[Change] = []
    for item in items:
        product = products.get(item.id)
        changes.append(_product_change(item, product, catalog))
        changes += _price_changes(item, prices.get(item.lookup_key), product, catalog)
    return changes


def _product_change(item: Plan | AddOn, product: dict[str, Any] | None, catalog: Catalog) -> Change:
    want = product_fields(item, catalog)
    if product is None:
        return Change("create_product", item.id, fields=want)
    diff = {
        k: v
        for k, v in want.items()
        if (k == "metadata" and any(product["metadata"].get(mk) != mv for mk, mv in v.items()))
        or (k != "metadata" and product.get(k) != v)
    }
    if not product.get("active", True):
        diff["active"] = True
    if not diff:
        return Change("no_change", item.id, stripe_id=product["id"])
    reason = "fields differ: " + ", ".join(sorted(diff))
    return Change("update_product", item.id, stripe_id=product["id"], fields=diff, reason=reason)


def _price_changes(
    item: Plan | AddOn,
    price: dict[str, Any] | None,
    product: dict[str, Any] | None,
    catalog: Catalog,
) -> list[Change]:
    want = price_fields(item, catalog)
    key = item.lookup_key
    if price is None:
        return [Change("create_price", item.id, key, fields=want, reason="new")]
    if product is None or not _price_matches(price, want, product["id"]):
        # Stripe prices are immutable: a new amount is a new price that takes the key over.
        old = f"{price.get('unit_amount')} {price.get('currency')}"
        new = f"{want['unit_amount']} {want['currency']}"
        fields = {**want, "transfer_lookup_key": True}
        reason = f"price changed {old} -> {new}; lookup key transfers"
        archive = Change(
            "archive_price", item.id, key, price["id"], {"active": False}, reason="superseded"
        )
        return [Change("create_price", item.id, key, fields=fields, reason=reason), archive]
    diff: dict[str, Any] = {}
    if any(price["metadata"].get(k) != v for k, v in want["metadata"].items()):
        diff["metadata"] = want["metadata"]
    if not price.get("active", True):
        diff["active"] = True
    if not diff:
        return [Change("no_change", item.id, key, stripe_id=price["id"])]
    reason = "fields differ: " + ", ".join(sorted(diff))
    return [Change("update_price", item.id, key, price["id"], diff, reason=reason)]


# Change.fields is the plan's data (printed, compared, JSON); the requests are rebuilt from it
# key by key as the SDK's types, so mypy checks every parameter name against the pinned API.


def _product_create(f: dict[str, Any]) -> ProductCreateParams:
    return {"name": f["name"], "metadata": f["metadata"]}


def _product_update(f: dict[str, Any]) -> ProductUpdateParams:
    params: ProductUpdateParams = {}
    if "name" in f:
        params["name"] = f["name"]
    if "metadata" in f:
        params["metadata"] = f["metadata"]
    if "active" in f:
        params["active"] = f["active"]
    return params


def _price_create(f: dict[str, Any], product_id: str) -> PriceCreateParams:
    params: PriceCreateParams = {
        "currency": f["currency"],
        "unit_amount": f["unit_amount"],
        "recurring": {
            "interval": f["recurring"]["interval"],
            "interval_count": f["recurring"]["interval_count"],
        },
        "lookup_key": f["lookup_key"],
        "nickname": f["nickname"],
        "metadata": f["metadata"],
        "product": product_id,
    }
    if f.get("transfer_lookup_key"):
        params["transfer_lookup_key"] = True
    return params


def _price_update(f: dict[str, Any]) -> PriceUpdateParams:
    params: PriceUpdateParams = {}
    if "metadata" in f:
        params["metadata"] = f["metadata"]
    if "active" in f:
        params["active"] = f["active"]
    return params


def apply_sync(changes: Sequence[Change], gateway: StripeGateway) -> list[dict[str, Any]]:
    """Applies the writes in order (a product before its price, a new price before the
    archive of the old one); returns what Stripe answered for each write."""
    product_ids = {
        c.dataface_id: c.stripe_id
        for c in changes
        if c.action in {"update_product", "no_change"} and c.lookup_key is None
    }
    results: list[dict[str, Any]] = []
    for change in changes:
        if change.action == "create_product":
            created = gateway.create_product(
                _product_create(change.fields),
                idempotency_key=_idempotency_key("product", change.dataface_id, change.fields),
            )
            product_ids[change.dataface_id] = created["id"]
            results.append(created)
        elif change.action == "update_product":
            assert change.stripe_id is not None
            results.append(gateway.update_product(change.stripe_id, _product_update(change.fields)))
        elif change.action == "create_price":
            product_id = product_ids.get(change.dataface_id)
            if product_id is None:
                raise RuntimeError(f"no product for {change.dataface_id}; plan and apply disagree")
            params = _price_create(change.fields, product_id)
            key = _idempotency_key("price", change.dataface_id, dict(params))
            results.append(gateway.create_price(params, idempotency_key=key))
        elif change.action in {"update_price", "archive_price"}:
            assert change.stripe_id is not None
            results.append(gateway.update_price(change.stripe_id, _price_update(change.fields)))
    return results
