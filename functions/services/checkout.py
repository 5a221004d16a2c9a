"""Checkout, portal and plan change, acted on Stripe through the ports only.

Nothing here writes entitlements; the resulting Stripe events come back through the
webhook and the subscriber, which stay the only writers of access. The Stripe customer is
always the one linked to the account in the AccountStore, never one named by a caller.

Checkout: the customer is created once per account (idempotency key derived from the
account id, plus a first-writer-wins link), the session is in subscription mode with
`client_reference_id` = account id. One trial per account: the 30-day trial is offered only
while the account's `trial_used` is false, and the flag is set as soon as a trial session is
created (not when it completes), so opening many checkouts cannot farm trials; an abandoned
trial checkout therefore uses the trial up, which support can reset by hand.

Plan changes (proration policy; the classification is statemachine/plan_change.py):
- Upgrade = the target is not smaller in any way (higher plan rank, or same plan with only
  added add-ons/seats), or it moves to a higher plan rank even if it drops an add-on. It is
  applied immediately with `proration_behavior=create_prorations`: the customer gets the
  bigger plan now and pays the prorated difference on the next invoice.
- Downgrade = anything else (lower rank, or same rank with an add-on removed or fewer
  seats). It takes effect at the end of the current period through a subscription
  schedule: phase 1 keeps the current items until `current_period_end`, phase 2 holds the
  target items with `proration_behavior=none`, and the schedule is released afterwards.
  Why a schedule rather than an immediate `proration_behavior=none` update: the customer
  keeps what they already paid for until the period ends, no credit notes are issued, and
  the pending change is visible in Stripe (Dashboard, portal) instead of only in our code.
  Stripe emits `customer.subscription.updated` when the phase flips, so entitlements drop
  at the exact moment billing does.
- An upgrade while a downgrade is pending releases the schedule first, then applies the
  upgrade, so the latest request wins.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.errors import PermanentError
from functions.ports import AccountStore, StripeGateway
from schemas.catalog import Catalog
from schemas.checkout import ChangeRequest, CheckoutRequest, PortalRequest, SubscriptionRequest
from schemas.documents import AccountLink
from statemachine.catalog import CATALOG
from statemachine.plan_change import (
    BLOCKING_STATUSES,
    LIVE_STATUSES,
    PlanTarget,
    classify,
    item_ref,
    line_items,
    state_of,
)

if TYPE_CHECKING:
    # The SDK's request types for the pinned API version (type checking only: services do
    # not load the client library). A parameter Stripe removed is a mypy error here.
    from stripe.params import (
        SubscriptionScheduleUpdateParamsPhase,
        SubscriptionScheduleUpdateParamsPhaseItem,
        SubscriptionUpdateParamsItem,
    )
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsSubscriptionData

Result = dict[str, Any]
# A change request repeated within this window, on the same subscription state, is a replay.
CHANGE_DEDUP_SECONDS = 600


class Refused(PermanentError):
    """The request cannot be served as asked; `code` names why (the entry point's status)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CheckoutUrls:
    success: str
    cancel: str
    # From configuration only: a caller-chosen return URL would be an open redirect.
    portal_return: str


def target_of(req: SubscriptionRequest) -> PlanTarget:
    return PlanTarget(plan=req.plan, add_ons=req.add_ons, seats=req.seats)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _period(sub: dict[str, Any]) -> tuple[int, int]:
    items = sub["items"]["data"]
    start = max((i.get("current_period_start") or 0) for i in items) if items else 0
    end = max((i.get("current_period_end") or 0) for i in items) if items else 0
    return (start or int(sub.get("current_period_start") or 0)), (
        end or int(sub.get("current_period_end") or 0)
    )


def _quantity(item: dict[str, Any]) -> int:
    return int(item.get("quantity") or 1)


@dataclass(frozen=True)
class CheckoutService:
    gateway: StripeGateway
    accounts: AccountStore
    urls: CheckoutUrls
    catalog: Catalog = CATALOG
    clock: Callable[[], float] = time.time

    # -- checkout -----------------------------------------------------------------------

    def checkout(self, req: CheckoutRequest) -> Result:
        link, trialed_before = self._customer_for_checkout(req.account_id)
        items = line_items(target_of(req), self.catalog)
        prices = self._price_ids([k for k, _ in items])
        trial_days = 0 if link.trial_used or trialed_before else self.catalog.trial_days
        subscription_data: SessionCreateParamsSubscriptionData = {
            "metadata": {"account_id": req.account_id, "dataface_plan": req.plan}
        }
        if trial_days:
            subscription_data["trial_period_days"] = trial_days
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": link.customer_id,
            "client_reference_id": req.account_id,
            "line_items": [{"price": prices[k], "quantity": q} for k, q in items],
            "success_url": self.urls.success,
            "cancel_url": self.urls.cancel,
            "metadata": {"account_id": req.account_id},
            "subscription_data": subscription_data,
        }
        # A fresh key per request: SDK/429 retries of this call replay, a new click makes a
        # new session (an old one may have expired).
        session = self.gateway.create_checkout_session(
            params, idempotency_key=f"checkout-{req.account_id}-{uuid.uuid4().hex}"
        )
        if trial_days:
            self.accounts.mark_trial_used(req.account_id)
        return {
            "result": "created",
            "url": session["url"],
            "session_id": session["id"],
            "trial_days": trial_days,
        }

    def _customer_for_checkout(self, account_id: str) -> tuple[AccountLink, bool]:
        """The account's link (created with its Stripe customer if new), and whether a
        trial was ever granted to that customer outside this function."""
        link = self.accounts.get(account_id)
        if link is None:
            customer = self.gateway.create_customer(
                {"metadata": {"account_id": account_id}},
                # Derived from the account: concurrent first checkouts create one customer.
                idempotency_key=f"customer-for-account-{account_id}",
            )
            return self.accounts.link(account_id, customer["id"], int(self.clock())), False
        subs = self.gateway.list_customer_subscriptions(link.customer_id)
        if any(s.get("status") in BLOCKING_STATUSES for s in subs):
            raise Refused(
                "already_subscribed",
                "account already has a subscription; use change_subscription or the portal",
            )
        # A trial granted outside this function (Dashboard, an earlier system) counts too.
        return link, any(s.get("trial_end") for s in subs)

    # -- portal -------------------------------------------------------------------------

    def portal(self, req: PortalRequest) -> Result:
        customer_id = self._linked_customer(req.account_id)
        session = self.gateway.create_portal_session(
            {"customer": customer_id, "return_url": self.urls.portal_return},
            idempotency_key=f"portal-{req.account_id}-{uuid.uuid4().hex}",
        )
        return {"result": "created", "url": session["url"]}

    # -- plan change --------------------------------------------------------------------

    def change(self, req: ChangeRequest) -> Result:
        customer_id = self._linked_customer(req.account_id)
        sub = self._live_subscription(customer_id)
        target = target_of(req)
        kind = classify(state_of(sub, self.catalog), target, self.catalog)
        if kind == "none":
            return {"result": "no_change", "subscription_id": sub["id"]}
        prices = self._price_ids([k for k, _ in line_items(target, self.catalog)])
        key = self._change_key(sub, req)
        if kind == "upgrade":
            return self._upgrade(sub, target, prices, key)
        return self._downgrade(sub, target, prices, key)

    def _live_subscription(self, customer_id: str) -> dict[str, Any]:
        live = [
            s
            for s in self.gateway.list_customer_subscriptions(customer_id)
            if s.get("status") in LIVE_STATUSES and s.get("customer") == customer_id
        ]
        if not live:
            raise Refused("no_subscription", "account has no active subscription; use checkout")
        return max(live, key=lambda s: int(s.get("created") or 0))

    def _change_key(self, sub: dict[str, Any], req: ChangeRequest) -> str:
        # Same subscription state + same target within the same window -> same key, so a
        # double-submitted change (two requests racing past the no-change check) applies
        # once. The state is part of the key so a later, legitimate repeat is not swallowed.
        state = sorted((i["id"], i["price"]["id"], _quantity(i)) for i in sub["items"]["data"])
        bucket = int(self.clock()) // CHANGE_DEDUP_SECONDS
        return _key(sub["id"], sub.get("schedule"), state, req.model_dump(), bucket)

    def _upgrade(
        self, sub: dict[str, Any], target: PlanTarget, prices: dict[str, str], key: str
    ) -> Result:
        if sub.get("schedule"):
            self.gateway.release_subscription_schedule(
                sub["schedule"], idempotency_key=f"release-{key}"
            )
        self.gateway.update_subscription(
            sub["id"],
            {
                "items": self._update_items(sub, target, prices),
                "proration_behavior": "create_prorations",
            },
            idempotency_key=f"upgrade-{key}",
        )
        return {
            "result": "applied",
            "change": "upgrade",
            "subscription_id": sub["id"],
            "proration_behavior": "create_prorations",
        }

    def _downgrade(
        self, sub: dict[str, Any], target: PlanTarget, prices: dict[str, str], key: str
    ) -> Result:
        start, end = _period(sub)
        target_items = line_items(target, self.catalog)
        schedule_id = sub.get("schedule")
        if not schedule_id:
            schedule = self.gateway.create_subscription_schedule(
                {"from_subscription": sub["id"]}, idempotency_key=f"schedule-{key}"
            )
            schedule_id = schedule["id"]
        current: list[SubscriptionScheduleUpdateParamsPhaseItem] = [
            {"price": i["price"]["id"], "quantity": _quantity(i)} for i in sub["items"]["data"]
        ]
        phases: list[SubscriptionScheduleUpdateParamsPhase] = [
            {"items": current, "start_date": start, "end_date": end},
            {
                "items": [{"price": prices[k], "quantity": q} for k, q in target_items],
                "proration_behavior": "none",
                "duration": {"interval": "month", "interval_count": 1},
            },
        ]
        self.gateway.update_subscription_schedule(
            schedule_id,
            {"end_behavior": "release", "phases": phases},
            idempotency_key=f"downgrade-{key}",
        )
        return {
            "result": "scheduled",
            "change": "downgrade",
            "subscription_id": sub["id"],
            "effective_at": end,
        }

    def _update_items(
        self, sub: dict[str, Any], target: PlanTarget, prices: dict[str, str]
    ) -> list[SubscriptionUpdateParamsItem]:
        """Stripe's item changes: keep-and-reprice what the target has, delete the rest."""
        wanted: dict[str, tuple[str, int]] = {
            "plan": (self.catalog.plan(target.plan).lookup_key, 1)
        }
        for a in target.add_ons:
            wanted[a] = (self.catalog.add_on(a).lookup_key, 1)
        seat = self.catalog.seat_add_on()
        if target.seats and seat is not None:
            wanted[seat.id] = (seat.lookup_key, target.seats)
        changes: list[SubscriptionUpdateParamsItem] = []
        for item in sub["items"]["data"]:
            ref = item_ref(item, self.catalog)
            if ref in wanted:
                key, qty = wanted.pop(ref)
                changes.append({"id": item["id"], "price": prices[key], "quantity": qty})
            else:
                changes.append({"id": item["id"], "deleted": True})
        changes += [{"price": prices[key], "quantity": qty} for key, qty in wanted.values()]
        return changes

    # -- shared -------------------------------------------------------------------------

    def _price_ids(self, lookup_keys: list[str]) -> dict[str, str]:
        found = {
            p["lookup_key"]: p["id"]
            for p in self.gateway.list_prices(lookup_keys=lookup_keys)
            if p.get("active") and p.get("lookup_key")
        }
        missing = sorted(set(lookup_keys) - set(found))
        if missing:
            # Catalog not synced to this Stripe account: an operator problem, not the caller's.
            raise Refused("catalog_not_synced", f"no active Stripe price for {missing}")
        return found

    def _linked_customer(self, account_id: str) -> str:
        link = self.accounts.get(account_id)
        if link is None:
            raise Refused("unknown_account", "no billing customer for this account")
        return link.customer_id
