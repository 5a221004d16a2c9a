"""Models that validate the catalog data in statemachine/catalog.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.entitlements import Limits

# The most units of one subscription item we accept from Stripe (seats, add-ons). Stripe
# itself refuses negative quantities but lets an integration or a dashboard user set any
# size; we sell at most 500 extra seats through checkout and Business includes 25, so
# 10,000 is far beyond a real customer while far below where a seat limit stops meaning
# anything. An item outside 0..10,000 is refused (the event is dead-lettered with its
# reason), never turned into limits. 0 is allowed: Stripe keeps 0-quantity items.
MAX_ITEM_QUANTITY = 10_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Plan(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    monthly_amount_cents: int = Field(gt=0)
    lookup_key: str
    features: tuple[str, ...]
    limits: Limits
    rank: int = Field(ge=1, description="higher is a bigger plan; decides upgrade vs downgrade")


class AddOn(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    monthly_amount_cents: int = Field(gt=0)
    lookup_key: str
    features: tuple[str, ...] = ()
    # Added to the plan's limits, per unit of quantity.
    extra_limits: dict[str, int] = Field(default_factory=dict)
    per_unit: bool = False

    @model_validator(mode="after")
    def _known_limits(self) -> AddOn:
        unknown = set(self.extra_limits) - set(Limits.model_fields)
        if unknown:
            raise ValueError(f"unknown limit names: {sorted(unknown)}")
        return self


class Catalog(_Frozen):
    currency: str = "usd"
    trial_days: int = Field(ge=0)
    plans: tuple[Plan, ...]
    add_ons: tuple[AddOn, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        keys = [p.lookup_key for p in self.plans] + [a.lookup_key for a in self.add_ons]
        ids = [p.id for p in self.plans] + [a.id for a in self.add_ons]
        if len(set(keys)) != len(keys) or len(set(ids)) != len(ids):
            raise ValueError("plan and add-on ids and lookup keys must be unique")
        if len({p.rank for p in self.plans}) != len(self.plans):
            raise ValueError("plan ranks must be unique")
        if sum(a.per_unit for a in self.add_ons) > 1:
            raise ValueError("at most one per-unit add-on (the seat add-on)")
        return self

    def seat_add_on(self) -> AddOn | None:
        """The add-on sold by quantity; requests name it as a seat count, not an add-on."""
        return next((a for a in self.add_ons if a.per_unit), None)

    def by_lookup_key(self, key: str) -> Plan | AddOn | None:
        items: tuple[Plan | AddOn, ...] = (*self.plans, *self.add_ons)
        for item in items:
            if item.lookup_key == key:
                return item
        return None

    def by_id(self, ident: str) -> Plan | AddOn | None:
        items: tuple[Plan | AddOn, ...] = (*self.plans, *self.add_ons)
        return next((item for item in items if item.id == ident), None)

    def recognise(self, lookup_key: str | None, catalog_id: str | None) -> Plan | AddOn | None:
        """Our plan or add-on for a price: by lookup key, else by the id catalog sync wrote
        in the price's metadata (a price whose lookup key moved on still grants its item)."""
        found = self.by_lookup_key(lookup_key) if lookup_key else None
        if found is None and catalog_id:
            found = self.by_id(catalog_id)
        return found

    def plan(self, plan_id: str) -> Plan:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        raise KeyError(plan_id)

    def add_on(self, add_on_id: str) -> AddOn:
        for add_on in self.add_ons:
            if add_on.id == add_on_id:
                return add_on
        raise KeyError(add_on_id)
