"""The Billing Portal configuration as code (it used to be set by hand in the Dashboard).

What customers may do in the portal, and how it matches our own policy:
- update their payment method and see their invoices;
- cancel at the end of the period (never immediately, no proration: they keep what they
  paid for, as with our own downgrades), choosing one of CANCELLATION_REASONS;
- switch plans among our catalog's plan prices only (the prices `catalog sync` created,
  resolved by lookup key; add-ons and seats change through our change API, which knows
  their rules). Proration follows functions/services/checkout.py: an upgrade applies now
  with `create_prorations`; a downgrade (`decreasing_item_amount`, and a shorter interval)
  waits for the period end (`schedule_at_period_end`), as our subscription schedules do.

Which configuration: the account's default one, because our portal sessions name none and
so use the default. An account without one (its portal settings were never saved in the
Dashboard) is refused, not given a second configuration: one made here would not be the
default, so no session of ours would use it while the sync reported success. A plan with no
difference performs reads only, so a second run writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from functions.errors import ConfigError
from functions.ports import StripeGateway
from schemas.catalog import Catalog

if TYPE_CHECKING:
    from stripe.params.billing_portal import (
        ConfigurationUpdateParams,
        ConfigurationUpdateParamsFeatures,
    )

PortalAction = Literal["update", "no_change"]
# Our choice among Stripe's reasons: the ones product can act on, plus "other".
CANCELLATION_REASONS = (
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "too_complex",
    "other",
)
UPGRADE_PRORATION = "create_prorations"
DOWNGRADE_CONDITIONS = ("decreasing_item_amount", "shortening_interval")


@dataclass(frozen=True)
class PortalPlan:
    action: PortalAction
    configuration_id: str
    # Managed setting -> (what Stripe has, what the code wants), for the differences only.
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        return self.action != "no_change"

    def drift(self) -> list[str]:
        return [f"{path}: {have!r} -> {want!r}" for path, (have, want) in self.diff.items()]

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "configuration_id": self.configuration_id,
            "diff": {k: {"stripe": h, "code": w} for k, (h, w) in self.diff.items()},
            "features": self.features,
        }


def plan_products(catalog: Catalog, gateway: StripeGateway) -> list[dict[str, Any]]:
    """[{product, prices}] for each plan, from the active prices holding its lookup key."""
    keys = [p.lookup_key for p in catalog.plans]
    prices = {
        p["lookup_key"]: p
        for p in gateway.list_prices(lookup_keys=keys)
        if p.get("active") and p.get("lookup_key")
    }
    missing = sorted(set(keys) - set(prices))
    if missing:
        raise ConfigError(f"no active Stripe price for {missing}: run `billing-ops catalog sync`")
    return [{"product": prices[k]["product"], "prices": [prices[k]["id"]]} for k in keys]


def desired_features(products: list[dict[str, Any]]) -> ConfigurationUpdateParamsFeatures:
    return {
        "payment_method_update": {"enabled": True},
        "invoice_history": {"enabled": True},
        "subscription_cancel": {
            "enabled": True,
            "mode": "at_period_end",
            "proration_behavior": "none",
            "cancellation_reason": {"enabled": True, "options": list(CANCELLATION_REASONS)},
        },
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": [{"product": p["product"], "prices": p["prices"]} for p in products],
            "proration_behavior": UPGRADE_PRORATION,
            "schedule_at_period_end": {
                "conditions": [{"type": c} for c in DOWNGRADE_CONDITIONS],
            },
        },
    }


def _comparable(features: Any) -> dict[str, Any]:
    """The managed settings as flat, order-free values (Stripe's answer or our request)."""
    f = features or {}
    cancel = f.get("subscription_cancel") or {}
    update = f.get("subscription_update") or {}
    reason = cancel.get("cancellation_reason") or {}
    products = update.get("products") or []
    conditions = (update.get("schedule_at_period_end") or {}).get("conditions") or []
    return {
        "payment_method_update.enabled": (f.get("payment_method_update") or {}).get("enabled"),
        "invoice_history.enabled": (f.get("invoice_history") or {}).get("enabled"),
        "subscription_cancel.enabled": cancel.get("enabled"),
        "subscription_cancel.mode": cancel.get("mode"),
        "subscription_cancel.proration_behavior": cancel.get("proration_behavior"),
        "subscription_cancel.cancellation_reason.enabled": reason.get("enabled"),
        "subscription_cancel.cancellation_reason.options": sorted(reason.get("options") or []),
        "subscription_update.enabled": update.get("enabled"),
        "subscription_update.default_allowed_updates": sorted(
            update.get("default_allowed_updates") or []
        ),
        "subscription_update.products": sorted(
            (p["product"], sorted(p.get("prices") or [])) for p in products
        ),
        "subscription_update.proration_behavior": update.get("proration_behavior"),
        "subscription_update.schedule_at_period_end.conditions": sorted(
            c.get("type") for c in conditions
        ),
    }


def _default(configs: list[dict[str, Any]]) -> dict[str, Any]:
    default = [c for c in configs if c.get("is_default")]
    if not default:
        raise ConfigError(
            "this Stripe account has no default portal configuration (the one portal "
            "sessions use): save the customer portal settings once in the Dashboard "
            "(Settings -> Billing -> Customer portal), then run this sync again"
        )
    return default[0]


def plan_portal(catalog: Catalog, gateway: StripeGateway) -> PortalPlan:
    """Reads Stripe's portal configurations and returns what would make ours match."""
    features = desired_features(plan_products(catalog, gateway))
    want = _comparable(features)
    config = _default(gateway.list_portal_configurations())
    have = _comparable(config.get("features"))
    diff: dict[str, tuple[Any, Any]] = {k: (have[k], v) for k, v in want.items() if have[k] != v}
    if not config.get("active", True):
        diff["active"] = (False, True)
    action: PortalAction = "update" if diff else "no_change"
    return PortalPlan(action, config["id"], diff, dict(features))


def _update_params(plan: PortalPlan) -> ConfigurationUpdateParams:
    # Rebuilt from the planned products so the request is the typed one, not plan data.
    products = plan.features["subscription_update"]["products"]
    params: ConfigurationUpdateParams = {"features": desired_features(products)}
    if "active" in plan.diff:
        params["active"] = True
    return params


def apply_portal(plan: PortalPlan, gateway: StripeGateway) -> dict[str, Any] | None:
    """Writes the plan; returns Stripe's configuration."""
    if plan.action == "no_change":
        return None
    return gateway.update_portal_configuration(plan.configuration_id, _update_params(plan))
