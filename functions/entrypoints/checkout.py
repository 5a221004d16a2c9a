"""The three HTTP functions our own services call: checkout, portal and plan change.

They are thin: authenticate, validate, act on Stripe, answer. Nothing here writes
entitlements; the resulting Stripe events come back through the webhook and the
subscriber, which stay the only writers of access.

Every request: POST only (405), `Authorization: Bearer` token for one account (401, see
functions/entrypoints/auth.py), JSON body validated by pydantic (400 not JSON, 422 invalid), body
account_id equal to the token's subject (403). The Stripe customer is always the one linked
to that account in Firestore, never one named by the caller. A rejected request makes no
Stripe call.

Checkout: the customer is created once per account (idempotency key derived from the
account id, plus a first-writer-wins Firestore link), the session is in subscription mode
with `client_reference_id` = account id. One trial per account: the 30-day trial is offered
only while `accounts/{id}.trial_used` is false, and the flag is set as soon as a trial
session is created (not when it completes), so opening many checkouts cannot farm trials; an
abandoned trial checkout therefore uses the trial up, which support can reset by hand.

Plan changes (proration policy):
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
from functools import cache
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions import composition
from functions.config import StripeApiSettings, load_settings
from functions.entrypoints.auth import AuthSettings, Unauthenticated, verify_bearer
from functions.errors import ConfigError, StripeRejected, StripeUnavailable, TransientError
from functions.log import get_logger
from functions.ports import AccountStore, StripeGateway
from schemas.catalog import Catalog
from statemachine.catalog import CATALOG

SEAT_ADD_ON = "extra_seat"
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
# Statuses that still count as "has a subscription" for checkout (no second one).
BLOCKING_STATUSES = LIVE_STATUSES | {"unpaid", "incomplete", "paused"}


class CheckoutSettings(StripeApiSettings):
    checkout_success_url: str = Field(pattern=r"^https?://")
    checkout_cancel_url: str = Field(pattern=r"^https?://")
    # From configuration only: a caller-chosen return URL would be an open redirect.
    portal_return_url: str = Field(pattern=r"^https?://")


@cache
def checkout_settings() -> CheckoutSettings:
    return load_settings(CheckoutSettings)


# -- request models ---------------------------------------------------------------------

_ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str = Field(pattern=_ACCOUNT_ID)


class PortalRequest(_Request):
    pass


class SubscriptionTarget(_Request):
    """The whole desired subscription: a plan, add-ons (no duplicates) and extra seats."""

    plan: str
    add_ons: tuple[str, ...] = ()
    seats: int = Field(default=0, ge=0, le=500, description="extra seats beyond the plan's")

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value not in {p.id for p in CATALOG.plans}:
            raise ValueError(f"unknown plan; expected one of {[p.id for p in CATALOG.plans]}")
        return value

    @field_validator("add_ons")
    @classmethod
    def _known_add_ons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {a.id for a in CATALOG.add_ons} - {SEAT_ADD_ON}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown add-ons {unknown}; seats go in 'seats'")
        if len(set(value)) != len(value):
            raise ValueError("add-ons must not repeat")
        return tuple(sorted(value))


class CheckoutRequest(SubscriptionTarget):
    pass


class ChangeRequest(SubscriptionTarget):
    pass


# -- wiring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deps:
    gateway: StripeGateway
    accounts: AccountStore
    settings: CheckoutSettings
    auth: AuthSettings
    catalog: Catalog = CATALOG
    clock: Callable[[], float] = time.time


class HttpError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"error": error, "message": message, **extra}


def _json(status: int, payload: dict[str, Any], **headers: str) -> flask.Response:
    return flask.Response(
        json.dumps(payload), status=status, mimetype="application/json", headers=headers
    )


def _serve(
    request: flask.Request,
    model: type[_Request],
    action: Callable[[Any, Deps], dict[str, Any]],
    deps: Deps | None,
    name: str,
) -> flask.Response:
    log = get_logger(function=name)
    if request.method != "POST":
        return _json(405, {"error": "method_not_allowed", "message": "use POST"}, Allow="POST")
    try:
        deps = deps or composition.checkout_deps()
    except ConfigError as exc:
        log.error("config_error", error=str(exc))
        return _json(500, {"error": "misconfigured", "message": "service misconfigured"})
    try:
        token_account = verify_bearer(request.headers.get("Authorization"), deps.auth)
    except Unauthenticated as exc:
        log.warning("unauthenticated", reason=str(exc))
        return _json(
            401,
            {"error": "unauthenticated", "message": str(exc)},
            **{"WWW-Authenticate": 'Bearer realm="dataface-billing"'},
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _json(400, {"error": "bad_request", "message": "body must be a JSON object"})
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return _json(
            422, {"error": "invalid_request", "message": "invalid input", "errors": errors}
        )
    if parsed.account_id != token_account:
        log.warning("account_mismatch", account_id=token_account)
        return _json(403, {"error": "forbidden", "message": "token is not valid for this account"})
    try:
        result = action(parsed, deps)
    except HttpError as exc:
        log.info("request_refused", account_id=parsed.account_id, status=exc.status)
        return _json(exc.status, exc.payload)
    except StripeRejected as exc:
        log.error("stripe_rejected", account_id=parsed.account_id, code=exc.code)
        return _json(502, {"error": "stripe_rejected", "message": "Stripe refused the request"})
    except (StripeUnavailable, TransientError) as exc:
        log.warning("dependency_unavailable", account_id=parsed.account_id, error=str(exc))
        return _json(
            503, {"error": "unavailable", "message": "try again shortly"}, **{"Retry-After": "5"}
        )
    log.info("request_done", account_id=parsed.account_id, result=result.get("result"))
    return _json(200, result)


# -- shared helpers ---------------------------------------------------------------------


def _line_items(target: SubscriptionTarget, catalog: Catalog) -> list[tuple[str, int]]:
    """(lookup_key, quantity) for the whole target subscription."""
    items = [(catalog.plan(target.plan).lookup_key, 1)]
    items += [(catalog.add_on(a).lookup_key, 1) for a in target.add_ons]
    if target.seats:
        items.append((catalog.add_on(SEAT_ADD_ON).lookup_key, target.seats))
    return items


def _price_ids(gateway: StripeGateway, lookup_keys: list[str]) -> dict[str, str]:
    found = {
        p["lookup_key"]: p["id"]
        for p in gateway.list_prices(lookup_keys=lookup_keys)
        if p.get("active") and p.get("lookup_key")
    }
    missing = sorted(set(lookup_keys) - set(found))
    if missing:
        # Catalog not synced to this Stripe account: an operator problem, not the caller's.
        raise HttpError(500, "catalog_not_synced", f"no active Stripe price for {missing}")
    return found


def _link_or_404(deps: Deps, account_id: str) -> str:
    link = deps.accounts.get(account_id)
    if link is None:
        raise HttpError(404, "unknown_account", "no billing customer for this account")
    return link.customer_id


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


# -- checkout ---------------------------------------------------------------------------


def _checkout(req: CheckoutRequest, deps: Deps) -> dict[str, Any]:
    link = deps.accounts.get(req.account_id)
    trialed_before = False
    if link is not None:
        subs = deps.gateway.list_customer_subscriptions(link.customer_id)
        if any(s.get("status") in BLOCKING_STATUSES for s in subs):
            raise HttpError(
                409,
                "already_subscribed",
                "account already has a subscription; use change_subscription or the portal",
            )
        # A trial granted outside this function (Dashboard, an earlier system) counts too.
        trialed_before = any(s.get("trial_end") for s in subs)
    else:
        customer = deps.gateway.create_customer(
            {"metadata": {"account_id": req.account_id}},
            # Derived from the account: concurrent first checkouts create one customer.
            idempotency_key=f"customer-for-account-{req.account_id}",
        )
        link = deps.accounts.link(req.account_id, customer["id"], int(deps.clock()))
    items = _line_items(req, deps.catalog)
    prices = _price_ids(deps.gateway, [k for k, _ in items])
    trial_days = 0 if link.trial_used or trialed_before else deps.catalog.trial_days
    subscription_data: dict[str, Any] = {
        "metadata": {"account_id": req.account_id, "dataface_plan": req.plan}
    }
    if trial_days:
        subscription_data["trial_period_days"] = trial_days
    params = {
        "mode": "subscription",
        "customer": link.customer_id,
        "client_reference_id": req.account_id,
        "line_items": [{"price": prices[k], "quantity": q} for k, q in items],
        "success_url": deps.settings.checkout_success_url,
        "cancel_url": deps.settings.checkout_cancel_url,
        "metadata": {"account_id": req.account_id},
        "subscription_data": subscription_data,
    }
    # A fresh key per request: SDK/429 retries of this call replay, a new click makes a
    # new session (an old one may have expired).
    session = deps.gateway.create_checkout_session(
        params, idempotency_key=f"checkout-{req.account_id}-{uuid.uuid4().hex}"
    )
    if trial_days:
        deps.accounts.mark_trial_used(req.account_id)
    return {
        "result": "created",
        "url": session["url"],
        "session_id": session["id"],
        "trial_days": trial_days,
    }


# -- portal -----------------------------------------------------------------------------


def _portal(req: PortalRequest, deps: Deps) -> dict[str, Any]:
    customer_id = _link_or_404(deps, req.account_id)
    session = deps.gateway.create_portal_session(
        {"customer": customer_id, "return_url": deps.settings.portal_return_url},
        idempotency_key=f"portal-{req.account_id}-{uuid.uuid4().hex}",
    )
    return {"result": "created", "url": session["url"]}


# -- plan change ------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionState:
    plan: str | None
    add_ons: frozenset[str]
    seats: int


def state_of(sub: dict[str, Any], catalog: Catalog) -> SubscriptionState:
    plan, add_ons, seats = None, set(), 0
    for item in sub["items"]["data"]:
        price = item["price"]
        found = catalog.by_lookup_key(price.get("lookup_key") or "")
        ident = found.id if found else (price.get("metadata") or {}).get("dataface_id")
        if ident in {p.id for p in catalog.plans}:
            plan = ident
        elif ident == SEAT_ADD_ON:
            seats += int(item.get("quantity") or 0)
        elif ident:
            add_ons.add(ident)
    return SubscriptionState(plan, frozenset(add_ons), seats)


def classify(current: SubscriptionState, target: SubscriptionTarget, catalog: Catalog) -> str:
    """'none', 'upgrade' (now, prorated) or 'downgrade' (at period end); see module doc."""
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


def _item_ref(item: dict[str, Any], catalog: Catalog) -> str | None:
    price = item["price"]
    found = catalog.by_lookup_key(price.get("lookup_key") or "")
    ident = found.id if found else (price.get("metadata") or {}).get("dataface_id")
    if ident in {p.id for p in catalog.plans}:
        return "plan"
    return ident if isinstance(ident, str) else None


def _update_items(
    sub: dict[str, Any], target: SubscriptionTarget, prices: dict[str, str], catalog: Catalog
) -> list[dict[str, Any]]:
    wanted: dict[str, tuple[str, int]] = {"plan": (catalog.plan(target.plan).lookup_key, 1)}
    for a in target.add_ons:
        wanted[a] = (catalog.add_on(a).lookup_key, 1)
    if target.seats:
        wanted[SEAT_ADD_ON] = (catalog.add_on(SEAT_ADD_ON).lookup_key, target.seats)
    changes: list[dict[str, Any]] = []
    for item in sub["items"]["data"]:
        ref = _item_ref(item, catalog)
        if ref in wanted:
            key, qty = wanted.pop(ref)
            changes.append({"id": item["id"], "price": prices[key], "quantity": qty})
        else:
            changes.append({"id": item["id"], "deleted": True})
    changes += [{"price": prices[key], "quantity": qty} for key, qty in wanted.values()]
    return changes


def _period(sub: dict[str, Any]) -> tuple[int, int]:
    items = sub["items"]["data"]
    start = max((i.get("current_period_start") or 0) for i in items) if items else 0
    end = max((i.get("current_period_end") or 0) for i in items) if items else 0
    return (start or int(sub.get("current_period_start") or 0)), (
        end or int(sub.get("current_period_end") or 0)
    )


def _change(req: ChangeRequest, deps: Deps) -> dict[str, Any]:
    customer_id = _link_or_404(deps, req.account_id)
    live = [
        s
        for s in deps.gateway.list_customer_subscriptions(customer_id)
        if s.get("status") in LIVE_STATUSES and s.get("customer") == customer_id
    ]
    if not live:
        raise HttpError(409, "no_subscription", "account has no active subscription; use checkout")
    sub = max(live, key=lambda s: int(s.get("created") or 0))
    current = state_of(sub, deps.catalog)
    kind = classify(current, req, deps.catalog)
    if kind == "none":
        return {"result": "no_change", "subscription_id": sub["id"]}
    target_items = _line_items(req, deps.catalog)
    prices = _price_ids(deps.gateway, [k for k, _ in target_items])
    # Same subscription state + same target within the same 10 minutes -> same key, so a
    # double-submitted change (two requests racing past the no-change check) applies once.
    # The state is part of the key so a later, legitimate repeat is not swallowed as a replay.
    state = sorted(
        (i["id"], i["price"]["id"], int(i.get("quantity") or 1)) for i in sub["items"]["data"]
    )
    bucket = int(deps.clock()) // 600
    key = _key(sub["id"], sub.get("schedule"), state, req.model_dump(), bucket)
    if kind == "upgrade":
        if sub.get("schedule"):
            deps.gateway.release_subscription_schedule(
                sub["schedule"], idempotency_key=f"release-{key}"
            )
        deps.gateway.update_subscription(
            sub["id"],
            {
                "items": _update_items(sub, req, prices, deps.catalog),
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
    start, end = _period(sub)
    schedule_id = sub.get("schedule")
    if not schedule_id:
        schedule = deps.gateway.create_subscription_schedule(
            {"from_subscription": sub["id"]}, idempotency_key=f"schedule-{key}"
        )
        schedule_id = schedule["id"]
    current_items = [
        {"price": i["price"]["id"], "quantity": int(i.get("quantity") or 1)}
        for i in sub["items"]["data"]
    ]
    deps.gateway.update_subscription_schedule(
        schedule_id,
        {
            "end_behavior": "release",
            "phases": [
                {"items": current_items, "start_date": start, "end_date": end},
                {
                    "items": [{"price": prices[k], "quantity": q} for k, q in target_items],
                    "proration_behavior": "none",
                    "duration": {"interval": "month", "interval_count": 1},
                },
            ],
        },
        idempotency_key=f"downgrade-{key}",
    )
    return {
        "result": "scheduled",
        "change": "downgrade",
        "subscription_id": sub["id"],
        "effective_at": end,
    }


# -- entry points (wrapped by main.py) --------------------------------------------------


def create_checkout_session(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(request, CheckoutRequest, _checkout, deps, "create_checkout_session")


def create_portal_session(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(request, PortalRequest, _portal, deps, "create_portal_session")


def change_subscription(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(request, ChangeRequest, _change, deps, "change_subscription")
