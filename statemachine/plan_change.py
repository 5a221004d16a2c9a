"""What a plan-change request means: the target's line items, and upgrade or downgrade.

Pure rules over the catalog and a subscription's items as Stripe returns them (plain
dicts), so the proration policy is testable without Stripe or HTTP. The policy itself is
described in functions/services/checkout.py, which acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from schemas.catalog import Catalog

ChangeKind = Literal["none", "upgrade", "downgrade"]
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
# Statuses that still count as "has a subscription" for checkout (no second one).
BLOCKING_STATUSES = LIVE_STATUSES | {"unpaid", "incomplete", "paused"}


@dataclass(frozen=True)
class PlanTarget:
    """The whole desired subscription: a plan, add-ons and extra seats."""

    plan: str
    add_ons: tuple[str, ...] = ()
    seats: int = 0


@dataclass(frozen=True)
class SubscriptionState:
    plan: str | None
    add_ons: frozenset[str]
    seats: int


def line_items(target: PlanTarget, catalog: Catalog) -> list[tuple[str, int]]:
    """(lookup_key, quantity) for the whole target subscription."""
    items = [(catalog.plan(target.plan).lookup_key, 1)]
    items += [(catalog.add_on(a).lookup_key, 1) for a in target.add_ons]
    seat = catalog.seat_add_on()
    if target.seats and seat is not None:
        items.append((seat.lookup_key, target.seats))
    return items


def _ident(item: Mapping[str, Any], catalog: Catalog) -> str | None:
    price = item.get("price") or item.get("plan") or {}
    found = catalog.recognise(
        price.get("lookup_key"), (price.get("metadata") or {}).get("dataface_id")
    )
    return found.id if found else None


def item_ref(item: Mapping[str, Any], catalog: Catalog) -> str | None:
    """ "plan" for the plan item, the add-on id for an add-on item, None if unknown."""
    ident = _ident(item, catalog)
    return "plan" if ident in {p.id for p in catalog.plans} else ident


def state_of(sub: Mapping[str, Any], catalog: Catalog) -> SubscriptionState:
    plan: str | None = None
    add_ons: set[str] = set()
    seats = 0
    seat = catalog.seat_add_on()
    for item in sub["items"]["data"]:
        ident = _ident(item, catalog)
        if ident in {p.id for p in catalog.plans}:
            plan = ident
        elif seat is not None and ident == seat.id:
            seats += int(item.get("quantity") or 0)
        elif ident:
            add_ons.add(ident)
    return SubscriptionState(plan, frozenset(add_ons), seats)


def classify(current: SubscriptionState, target: PlanTarget, catalog: Catalog) -> ChangeKind:
    """Upgrade = not smaller in any way, or a higher plan rank; anything else is a downgrade."""
    if (current.plan, current.add_ons, current.seats) == (
        target.plan,
        frozenset(target.add_ons),
        target.seats,
    ):
        return "none"
    new_rank = catalog.plan(target.plan).rank
    old_rank = catalog.plan(current.plan).rank if current.plan else 0
    if new_rank > old_rank:
        return "upgrade"
    if new_rank < old_rank:
        return "downgrade"
    shrinks = bool(current.add_ons - set(target.add_ons)) or target.seats < current.seats
    return "downgrade" if shrinks else "upgrade"
