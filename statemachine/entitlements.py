"""Entitlements from the access level plus the subscription's items and quantities.

Choices (the pricing research gives prices, not these):
- NONE: nothing (no plan, no features, zero limits).
- RESTRICTED: read-only. Features are just ("read_only",); the plan, add-ons and limits
  are kept so the product keeps the customer's data (tables, rules) within its limits.
- FULL and GRACE: the plan's features and limits plus every add-on's; per-unit add-ons
  (extra seats) add their limits once per unit of quantity, others once.
Items are recognised by lookup key, else by the `dataface_id` catalog sync writes in each
price's metadata (so a price whose key moved to a newer price keeps granting what it
granted). An item recognised by neither grants nothing: `problems()` reports
it so the domain records an anomaly instead of applying the snapshot.
"""

from __future__ import annotations

from schemas.catalog import AddOn, Catalog, Plan
from schemas.documents import ItemSnapshot
from schemas.entitlements import AccessLevel, Entitlements, Limits
from schemas.stripe import Subscription

NO_LIMITS = Limits(tables=0, custom_rules=0, seats=0, alert_channels=0, api_requests_per_day=0)
NOTHING = Entitlements(limits=NO_LIMITS)


def items_of(subscription: Subscription) -> list[ItemSnapshot]:
    return [
        ItemSnapshot(
            item_id=item.id,
            price_id=item.price.id,
            lookup_key=item.price.lookup_key,
            catalog_id=item.price.metadata.get("dataface_id"),
            quantity=item.quantity,
        )
        for item in subscription.items.data
    ]


def problems(items: list[ItemSnapshot], catalog: Catalog) -> list[str]:
    """Why these items cannot be turned into entitlements (empty list: they can)."""
    found: list[str] = []
    plans = 0
    for item in items:
        entry = catalog.recognise(item.lookup_key, item.catalog_id)
        if entry is None:
            found.append(f"unknown price {item.price_id} (lookup_key={item.lookup_key})")
        elif isinstance(entry, Plan):
            plans += 1
    if plans != 1:
        found.append(f"expected exactly one plan item, found {plans}")
    return found


def compute(access: AccessLevel, items: list[ItemSnapshot], catalog: Catalog) -> Entitlements:
    if access is AccessLevel.NONE:
        return NOTHING
    plan: Plan | None = None
    add_ons: list[tuple[AddOn, int]] = []
    for item in items:
        entry = catalog.recognise(item.lookup_key, item.catalog_id)
        if isinstance(entry, Plan):
            plan = entry
        elif isinstance(entry, AddOn):
            add_ons.append((entry, item.quantity))
    if plan is None:
        return NOTHING
    limits = plan.limits.model_dump()
    features = list(plan.features)
    for add_on, quantity in add_ons:
        units = quantity if add_on.per_unit else 1
        for name, extra in add_on.extra_limits.items():
            limits[name] += extra * units
        features.extend(f for f in add_on.features if f not in features)
    if access is AccessLevel.RESTRICTED:
        features = ["read_only"]
    return Entitlements(
        plan=plan.id,
        add_ons=tuple(sorted({a.id for a, _ in add_ons})),
        features=tuple(features),
        limits=Limits(**limits),
    )


def base_plan_items(catalog: Catalog) -> list[ItemSnapshot]:
    """What an operator override grants a customer who has no items: the smallest plan."""
    plan = min(catalog.plans, key=lambda p: p.rank)
    return [ItemSnapshot(item_id="override", price_id="override", lookup_key=plan.lookup_key)]
