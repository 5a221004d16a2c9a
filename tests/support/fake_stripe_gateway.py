"""In-memory StripeGateway for unit tests of catalog sync, checkout, plan changes, reconcile.

It keeps the real adapter's contract (tests/integration/test_stripe_gateway_contract.py
runs one suite against both this and SdkStripeGateway on tests/support/stripe_server.py):

- Objects are plain dicts in Stripe's shape (the fields our code reads), every one with a
  distinct, increasing `created`; lists come back complete, newest first.
- Every create needs an idempotency key (ValueError otherwise, nothing is sent). The same
  key with the same request replays the first answer, refusals included, and changes
  nothing; the same key with another request is refused (400, as Stripe's
  idempotency_error). Injected 5xx failures are not remembered under the key.
- Refusals raise StripeRejected with Stripe's status and code: 404 `resource_missing` for
  an unknown id, 400 `parameter_missing`, 400 `lookup_key_in_use`, 400 for a price field
  that cannot change, for an inactive price in a checkout, for item changes on a
  subscription a schedule manages. `fail_next(n, status)` makes the next n calls fail
  like Stripe answering `status` (5xx: StripeUnavailable, else StripeRejected).
- Stricter than Stripe on purpose: a parameter the fake does not model is refused
  ("Received unknown parameter"), so no test passes on a parameter silently ignored, and
  items and phases take price ids only. Extend the fake and the contract suite together.

Seed what the port cannot create with `seed_customer`, `seed_subscription` and
`seed_event` (the same signatures as the local Stripe server's). Every call is recorded in
`calls` as (method, idempotency key or None).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.errors import StripeRejected, StripeUnavailable

Obj = dict[str, Any]

_PRODUCT_FIELDS = {"name", "description", "metadata", "active"}
_PRICE_CREATE_FIELDS = {
    "currency",
    "product",
    "unit_amount",
    "recurring",
    "lookup_key",
    "transfer_lookup_key",
    "nickname",
    "metadata",
    "active",
}
_PRICE_UPDATE_FIELDS = {"active", "metadata", "lookup_key", "transfer_lookup_key", "nickname"}
_CUSTOMER_FIELDS = {"email", "name", "metadata"}
_CHECKOUT_FIELDS = {
    "mode",
    "customer",
    "client_reference_id",
    "line_items",
    "success_url",
    "cancel_url",
    "metadata",
    "subscription_data",
}
_PORTAL_FIELDS = {"customer", "return_url"}
_SUBSCRIPTION_UPDATE_FIELDS = {"items", "proration_behavior", "cancel_at_period_end"}
_SCHEDULE_CREATE_FIELDS = {"from_subscription"}
_SCHEDULE_UPDATE_FIELDS = {"phases", "end_behavior"}
_MONTH = 30 * 86_400


class _Refusal(Exception):
    """A Stripe 4xx inside the fake; becomes StripeRejected naming the operation."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _missing(kind: str, obj_id: object) -> _Refusal:
    return _Refusal(404, f"No such {kind}: '{obj_id}'", "resource_missing")


def _require(params: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if params.get(name) in ("", None):
            raise _Refusal(400, f"Missing required param: {name}.", "parameter_missing")


def _only(params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise _Refusal(400, f"Received unknown parameter: {unknown[0]}")


def _merge_metadata(obj: Obj, metadata: Mapping[str, Any]) -> None:
    obj["metadata"] = {**obj.get("metadata", {}), **metadata}


def _newest_first(objs: Sequence[Obj]) -> list[Obj]:
    ordered = sorted(objs, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
    return copy.deepcopy(ordered)


class FakeStripeGateway:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._clock = itertools.count(int(time.time()))
        self.products: dict[str, Obj] = {}
        self.prices: dict[str, Obj] = {}
        self.customers: dict[str, Obj] = {}
        self.checkout_sessions: dict[str, Obj] = {}
        # What each checkout session was created with (line items, trial, metadata).
        self.checkout_params: dict[str, Obj] = {}
        self.portal_sessions: dict[str, Obj] = {}
        self.subscriptions: dict[str, Obj] = {}
        self.subscription_schedules: dict[str, Obj] = {}
        self.events: dict[str, Obj] = {}
        self.invoices: dict[str, Obj] = {}
        self.thin_events: dict[str, Obj] = {}  # v2 events, by id
        self.undelivered: set[str] = set()
        self.calls: list[tuple[str, str | None]] = []
        self._idempotent: dict[str, tuple[tuple[Any, ...], Obj | _Refusal]] = {}
        self._failures: list[int] = []

    # -- fake-only controls -------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next `count` calls fail as if Stripe answered `status`."""
        with self._lock:
            self._failures.extend([status] * count)

    def seed_customer(self, customer_id: str, metadata: dict[str, str] | None = None) -> None:
        with self._lock:
            self.customers[customer_id] = self._customer(customer_id, {"metadata": metadata})

    def seed_subscription(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        *,
        status: str = "active",
        subscription_id: str | None = None,
        period_start: int | None = None,
        period_end: int | None = None,
    ) -> Obj:
        """items: (price id or lookup key, quantity). Prices must exist already."""
        with self._lock:
            sub_id = subscription_id or self._id("sub")
            start = period_start or int(time.time()) - 86_400
            end = period_end or start + _MONTH
            sub: Obj = {
                "id": sub_id,
                "object": "subscription",
                "livemode": False,
                "customer": customer_id,
                "status": status,
                "created": start,
                "cancel_at": None,
                "canceled_at": None,
                "cancel_at_period_end": False,
                "ended_at": None,
                "trial_end": None,
                "schedule": None,
                "latest_invoice": None,
                "metadata": {},
                "items": {"object": "list", "data": [], "has_more": False},
            }
            for ref, quantity in items:
                price = self._price_by_ref(ref)
                sub["items"]["data"].append(self._item(sub_id, price, quantity, start, end))
            self.subscriptions[sub_id] = sub
            return copy.deepcopy(sub)

    def seed_event(self, event: Obj, *, delivered: bool = True) -> None:
        with self._lock:
            self.events[event["id"]] = copy.deepcopy(event)
            if not delivered:
                self.undelivered.add(event["id"])

    # -- plumbing -----------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):08d}"

    def _now(self) -> int:
        return next(self._clock)

    def _begin(self, what: str, key: str | None) -> None:
        self.calls.append((what, key))
        if self._failures:
            status = self._failures.pop(0)
            if status >= 500:
                raise StripeUnavailable(f"stripe {what}: HTTP {status}")
            raise StripeRejected(f"stripe {what}: injected {status}", http_status=status, code=None)

    def _read(self, what: str, fn: Callable[[], list[Obj]]) -> list[Obj]:
        with self._lock:
            self._begin(what, None)
            return fn()

    def _update(self, what: str, fn: Callable[[], Obj]) -> Obj:
        with self._lock:
            self._begin(what, None)
            try:
                return copy.deepcopy(fn())
            except _Refusal as refusal:
                raise self._rejected(what, refusal) from None

    def _write(
        self,
        what: str,
        key: str,
        request: tuple[Any, ...],
        fn: Callable[[], Obj],
    ) -> Obj:
        if not key:
            raise ValueError("every create needs an idempotency key")
        with self._lock:
            self._begin(what, key)
            request = copy.deepcopy(request)
            seen = self._idempotent.get(key)
            if seen is not None:
                first, outcome = seen
                if first != request:
                    raise StripeRejected(
                        f"stripe {what}: Keys for idempotent requests can only be used with "
                        "the same parameters they were first used with.",
                        http_status=400,
                        code=None,
                    )
                if isinstance(outcome, _Refusal):
                    raise self._rejected(what, outcome)
                return copy.deepcopy(outcome)
            try:
                result = copy.deepcopy(fn())
            except _Refusal as refusal:
                self._idempotent[key] = (request, refusal)
                raise self._rejected(what, refusal) from None
            self._idempotent[key] = (request, result)
            return copy.deepcopy(result)

    @staticmethod
    def _rejected(what: str, refusal: _Refusal) -> StripeRejected:
        return StripeRejected(
            f"stripe {what}: {refusal}", http_status=refusal.status, code=refusal.code
        )

    @staticmethod
    def _get(store: dict[str, Obj], obj_id: str, kind: str) -> Obj:
        if obj_id not in store:
            raise _missing(kind, obj_id)
        return store[obj_id]

    def _price_by_ref(self, ref: str) -> Obj:
        if ref in self.prices:
            return self.prices[ref]
        for price in self.prices.values():
            if price.get("lookup_key") == ref:
                return price
        raise _missing("price", ref)

    def _item(self, sub_id: str, price: Obj, quantity: int, start: int, end: int) -> Obj:
        return {
            "id": self._id("si"),
            "object": "subscription_item",
            "created": self._now(),
            "subscription": sub_id,
            "price": copy.deepcopy(price),
            "quantity": quantity,
            "current_period_start": start,
            "current_period_end": end,
            "metadata": {},
        }

    def _customer(self, customer_id: str, p: Mapping[str, Any]) -> Obj:
        return {
            "id": customer_id,
            "object": "customer",
            "livemode": False,
            "created": self._now(),
            "email": p.get("email"),
            "name": p.get("name"),
            "metadata": dict(p.get("metadata") or {}),
        }

    def _take_lookup_key(self, key: str | None, transfer: bool, new_id: str) -> None:
        if not key:
            return
        for other in self.prices.values():
            if other.get("lookup_key") == key and other["id"] != new_id:
                if not transfer:
                    raise _Refusal(
                        400,
                        f"A price ({other['id']}) already uses that lookup key.",
                        "lookup_key_in_use",
                    )
                other["lookup_key"] = None

    # -- catalog ------------------------------------------------------------------------

    def list_products(self) -> list[Obj]:
        return self._read("list products", lambda: _newest_first(list(self.products.values())))

    def create_product(self, params: Mapping[str, Any], *, idempotency_key: str) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _PRODUCT_FIELDS)
            _require(p, "name")
            product = {
                "id": self._id("prod"),
                "object": "product",
                "livemode": False,
                "created": self._now(),
                "name": p["name"],
                "description": p.get("description"),
                "metadata": dict(p.get("metadata") or {}),
                "active": p.get("active", True),
                "default_price": None,
                "type": "service",
            }
            self.products[product["id"]] = product
            return product

        return self._write("create product", idempotency_key, ("product", p), create)

    def update_product(self, product_id: str, params: Mapping[str, Any]) -> Obj:
        p = dict(params)

        def update() -> Obj:
            product = self._get(self.products, product_id, "product")
            _only(p, _PRODUCT_FIELDS)
            for k, v in p.items():
                if k == "metadata":
                    _merge_metadata(product, v)
                else:
                    product[k] = v
            product["updated"] = self._now()
            return product

        return self._update("update product", update)

    def list_prices(
        self, *, lookup_keys: Sequence[str] | None = None, product: str | None = None
    ) -> list[Obj]:
        if lookup_keys is not None and not lookup_keys:
            return []

        def read() -> list[Obj]:
            prices = list(self.prices.values())
            if lookup_keys is not None:
                prices = [p for p in prices if p.get("lookup_key") in set(lookup_keys)]
            if product is not None:
                prices = [p for p in prices if p["product"] == product]
            return _newest_first(prices)

        return self._read("list prices", read)

    def create_price(self, params: Mapping[str, Any], *, idempotency_key: str) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _PRICE_CREATE_FIELDS)
            _require(p, "currency", "product", "unit_amount")
            self._get(self.products, p["product"], "product")
            price_id = self._id("price")
            self._take_lookup_key(p.get("lookup_key"), bool(p.get("transfer_lookup_key")), price_id)
            recurring = p.get("recurring")
            price = {
                "id": price_id,
                "object": "price",
                "livemode": False,
                "created": self._now(),
                "currency": p["currency"],
                "product": p["product"],
                "unit_amount": p["unit_amount"],
                "unit_amount_decimal": str(p["unit_amount"]),
                "lookup_key": p.get("lookup_key"),
                "metadata": dict(p.get("metadata") or {}),
                "nickname": p.get("nickname"),
                "active": p.get("active", True),
                "type": "recurring" if recurring else "one_time",
                "recurring": (
                    {
                        "interval": recurring["interval"],
                        "interval_count": recurring.get("interval_count", 1),
                        "usage_type": recurring.get("usage_type", "licensed"),
                        "trial_period_days": recurring.get("trial_period_days"),
                        "meter": None,
                    }
                    if recurring
                    else None
                ),
            }
            self.prices[price_id] = price
            return price

        return self._write("create price", idempotency_key, ("price", p), create)

    def update_price(self, price_id: str, params: Mapping[str, Any]) -> Obj:
        p = dict(params)

        def update() -> Obj:
            price = self._get(self.prices, price_id, "price")
            _only(p, _PRICE_UPDATE_FIELDS)
            if "lookup_key" in p:
                self._take_lookup_key(p["lookup_key"], bool(p.get("transfer_lookup_key")), price_id)
                price["lookup_key"] = p["lookup_key"] or None
            for k in ("active", "nickname"):
                if k in p:
                    price[k] = p[k]
            if "metadata" in p:
                _merge_metadata(price, p["metadata"])
            return price

        return self._update("update price", update)

    # -- customers and sessions ---------------------------------------------------------

    def create_customer(self, params: Mapping[str, Any], *, idempotency_key: str) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _CUSTOMER_FIELDS)
            customer = self._customer(self._id("cus"), p)
            self.customers[customer["id"]] = customer
            return customer

        return self._write("create customer", idempotency_key, ("customer", p), create)

    def create_checkout_session(self, params: Mapping[str, Any], *, idempotency_key: str) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _CHECKOUT_FIELDS)
            _require(p, "mode", "success_url", "line_items")
            if p.get("customer"):
                self._get(self.customers, p["customer"], "customer")
            for line in p["line_items"]:
                price = self._get(self.prices, line.get("price", ""), "price")
                if not price["active"]:
                    raise _Refusal(400, "The price is not active.")
            session_id = self._id("cs_test")
            session = {
                "id": session_id,
                "object": "checkout.session",
                "livemode": False,
                "created": self._now(),
                "mode": p["mode"],
                "customer": p.get("customer"),
                "client_reference_id": p.get("client_reference_id"),
                "success_url": p["success_url"],
                "cancel_url": p.get("cancel_url"),
                "metadata": dict(p.get("metadata") or {}),
                "status": "open",
                "subscription": None,
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            }
            self.checkout_sessions[session_id] = session
            self.checkout_params[session_id] = copy.deepcopy(p)
            return session

        return self._write("create checkout session", idempotency_key, ("checkout", p), create)

    def create_portal_session(self, params: Mapping[str, Any], *, idempotency_key: str) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _PORTAL_FIELDS)
            _require(p, "customer")
            self._get(self.customers, p["customer"], "customer")
            session_id = self._id("bps")
            session = {
                "id": session_id,
                "object": "billing_portal.session",
                "livemode": False,
                "created": self._now(),
                "customer": p["customer"],
                "return_url": p.get("return_url"),
                "flow": None,
                "url": f"https://billing.stripe.com/p/session/{session_id}",
            }
            self.portal_sessions[session_id] = session
            return session

        return self._write("create portal session", idempotency_key, ("portal", p), create)

    # -- subscriptions ------------------------------------------------------------------

    def list_customer_subscriptions(self, customer_id: str) -> list[Obj]:
        def read() -> list[Obj]:
            subs = [s for s in self.subscriptions.values() if s["customer"] == customer_id]
            return _newest_first(subs)

        return self._read("list subscriptions", read)

    def update_subscription(
        self, subscription_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> Obj:
        p = dict(params)

        def update() -> Obj:
            sub = self._get(self.subscriptions, subscription_id, "subscription")
            _only(p, _SUBSCRIPTION_UPDATE_FIELDS)
            if sub.get("schedule") and "items" in p:
                raise _Refusal(400, "The subscription is managed by a subscription schedule.")
            items = self._changed_items(sub, p.get("items", []))
            sub["items"]["data"] = items
            if "cancel_at_period_end" in p:
                sub["cancel_at_period_end"] = bool(p["cancel_at_period_end"])
            return sub

        request = ("subscription", subscription_id, p)
        return self._write("update subscription", idempotency_key, request, update)

    def _changed_items(self, sub: Obj, changes: Sequence[Mapping[str, Any]]) -> list[Obj]:
        """The subscription's items after `changes`, checked in full before anything moves."""
        items: list[Obj] = copy.deepcopy(sub["items"]["data"])
        first = items[0] if items else None
        start = first["current_period_start"] if first else self._now()
        end = first["current_period_end"] if first else start + _MONTH
        for change in changes:
            if "id" in change:
                item = next((i for i in items if i["id"] == change["id"]), None)
                if item is None:
                    raise _Refusal(404, "No such subscription item")
                if change.get("deleted"):
                    items.remove(item)
                    continue
                if "price" in change:
                    item["price"] = copy.deepcopy(self._get(self.prices, change["price"], "price"))
                if "quantity" in change:
                    item["quantity"] = change["quantity"]
            else:
                _require(change, "price")
                price = self._get(self.prices, change["price"], "price")
                items.append(self._item(sub["id"], price, change.get("quantity", 1), start, end))
        return items

    def create_subscription_schedule(
        self, params: Mapping[str, Any], *, idempotency_key: str
    ) -> Obj:
        p = dict(params)

        def create() -> Obj:
            _only(p, _SCHEDULE_CREATE_FIELDS)
            _require(p, "from_subscription")
            sub = self._get(self.subscriptions, p["from_subscription"], "subscription")
            if sub.get("schedule"):
                raise _Refusal(400, "The subscription already has a schedule.")
            data = sub["items"]["data"]
            start = data[0]["current_period_start"] if data else self._now()
            end = data[0]["current_period_end"] if data else start
            schedule = {
                "id": self._id("sub_sched"),
                "object": "subscription_schedule",
                "livemode": False,
                "created": self._now(),
                "customer": sub["customer"],
                "subscription": sub["id"],
                "status": "active",
                "end_behavior": "release",
                "released_subscription": None,
                "current_phase": {"start_date": start, "end_date": end},
                "phases": [
                    {
                        "start_date": start,
                        "end_date": end,
                        "items": [
                            {"price": i["price"]["id"], "quantity": i["quantity"]} for i in data
                        ],
                    }
                ],
                "metadata": {},
            }
            sub["schedule"] = schedule["id"]
            self.subscription_schedules[schedule["id"]] = schedule
            return schedule

        return self._write("create subscription schedule", idempotency_key, ("schedule", p), create)

    def update_subscription_schedule(
        self, schedule_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> Obj:
        p = dict(params)

        def update() -> Obj:
            schedule = self._get(self.subscription_schedules, schedule_id, "subscription schedule")
            _only(p, _SCHEDULE_UPDATE_FIELDS)
            for phase in p.get("phases", []):
                for item in phase.get("items", []):
                    self._get(self.prices, item.get("price", ""), "price")
            if "phases" in p:
                schedule["phases"] = copy.deepcopy(p["phases"])
            if "end_behavior" in p:
                schedule["end_behavior"] = p["end_behavior"]
            return schedule

        request = ("schedule", schedule_id, p)
        return self._write("update subscription schedule", idempotency_key, request, update)

    def release_subscription_schedule(self, schedule_id: str, *, idempotency_key: str) -> Obj:
        def release() -> Obj:
            schedule = self._get(self.subscription_schedules, schedule_id, "subscription schedule")
            if schedule["status"] == "released":
                raise _Refusal(400, "The subscription schedule is already released.")
            schedule["status"] = "released"
            schedule["released_subscription"] = schedule["subscription"]
            self.subscriptions[schedule["subscription"]]["schedule"] = None
            schedule["subscription"] = None
            return schedule

        request = ("release", schedule_id)
        return self._write("release subscription schedule", idempotency_key, request, release)

    # -- events -------------------------------------------------------------------------

    def list_undelivered_events(self, created_gte: int) -> list[Obj]:
        def read() -> list[Obj]:
            events = [
                e
                for e in self.events.values()
                if e["id"] in self.undelivered and e["created"] >= created_gte
            ]
            return _newest_first(events)

        return self._read("list events", read)

    # -- thin events: a related object's current state ----------------------------------
    # `_update` is the fake's one single-object call: it counts the call, honours
    # fail_next and turns a missing object into Stripe's 404.

    def retrieve_subscription(self, subscription_id: str) -> Obj:
        return self._update(
            "retrieve subscription",
            lambda: self._get(self.subscriptions, subscription_id, "subscription"),
        )

    def retrieve_invoice(self, invoice_id: str) -> Obj:
        return self._update(
            "retrieve invoice", lambda: self._get(self.invoices, invoice_id, "invoice")
        )

    def retrieve_checkout_session(self, session_id: str) -> Obj:
        return self._update(
            "retrieve checkout session",
            lambda: self._get(self.checkout_sessions, session_id, "checkout session"),
        )

    def retrieve_thin_event(self, event_id: str) -> Obj:
        return self._update(
            "retrieve v2 event", lambda: self._get(self.thin_events, event_id, "event")
        )
