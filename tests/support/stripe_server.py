"""A local HTTP server that speaks enough of Stripe's wire format for our adapter's tests.

Requests arrive exactly as the official SDK sends them (form-encoded bodies and query
strings with bracket notation, Idempotency-Key and Stripe-Version headers); responses are
Stripe-shaped JSON built from /work/shared/stripe-fixtures/fixtures3.json with our ids and
fields laid over them. Every request is recorded for assertions.

Behaviours tests rely on:
- Idempotency-Key replay: the same key returns the stored response and creates nothing;
  the same key with different parameters answers 400 idempotency_error (like Stripe).
- A lookup_key is held by one price at a time; reusing it without transfer_lookup_key is a
  400, with it the key moves to the new price.
- `fail_next(n, status)` answers the next n requests (optionally matching a path prefix)
  with a Stripe error, e.g. 429 rate limits.
- Webhook endpoints and portal configurations: tests/support/stripe_server_config.py.
- Seeding for other tests: `server.state.subscriptions[sub_id] = {...}` or
  `server.seed_subscription(...)`, `server.seed_event(..., delivered=False)`.
- Lifecycle: `complete_checkout(session_id)` creates the subscription a finished Checkout
  would; subscription updates and `advance_schedule(id)` (a phase ending) change it. Each
  emits the event Stripe would send (`server.emitted`, also listed by GET /v1/events).
- Thin events: `emit_thin(type, related_type, related_id, snapshot_event=...)` returns the
  notification an event destination pushes and keeps the v2 event for
  GET /v2/core/events/{id}; the related objects are served by GET /v1/subscriptions/{id},
  /v1/invoices/{id} (seed `server.state.invoices`) and /v1/checkout/sessions/{id}.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.stripe_fixtures import resources
from tests.support.stripe_server_config import ConfigurationRoutes

# shared/ sits beside the repository (as in CI: a fresh clone with shared/ next to it).
_INT_FIELDS = {
    "unit_amount",
    "quantity",
    "trial_period_days",
    "interval_count",
    "limit",
    "gte",
    "lte",
    "gt",
    "lt",
    "start_date",
    "end_date",
    "trial_end",
    "iterations",
}
_BOOL_FIELDS = {
    "active",
    "transfer_lookup_key",
    "deleted",
    "delivery_success",
    "cancel_at_period_end",
    "disabled",
    "enabled",
    "connect",
    "is_default",
}


class StripeApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "code": code}}


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int = 0

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def is_write(self) -> bool:
        return self.method in {"POST", "DELETE"}


@dataclass
class State:
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkout_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscription_schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    undelivered: set[str] = field(default_factory=set)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    # v2 events (thin): what GET /v2/core/events/{id} answers.
    thin_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_configurations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _coerce(key: str, value: str) -> Any:
    if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in _BOOL_FIELDS and value in {"true", "false"}:
        return value == "true"
    return value


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    return node


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`items[0][price]=p` -> {"items": [{"price": "p"}]}; `a[]=x&a[]=y` -> {"a": ["x","y"]}."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        base = raw_key.split("[", 1)[0]
        parts = [base, *re.findall(r"\[([^\]]*)\]", raw_key[len(base) :])]
        node: Any = root
        for i, raw_part in enumerate(parts):
            # `a[]` appends: the next free numeric index.
            part = raw_part or str(sum(1 for k in node if k.isdigit()))
            if i == len(parts) - 1:
                node[part] = _coerce(part, value)
            else:
                node = node.setdefault(part, {})
    result: dict[str, Any] = _listify(root)
    return result


class StripeServer(ConfigurationRoutes):
    def __init__(self, fixtures: Path | None = None) -> None:
        self.templates: dict[str, Any] = (
            json.loads(fixtures.read_text())["resources"] if fixtures else resources()
        )
        self.state = State()
        self.requests: list[RecordedRequest] = []
        # Every request since start, kept through clear_requests (the params check reads it).
        self.all_requests: list[RecordedRequest] = []
        self._idem: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self._failures: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._clock = itertools.count(int(time.time()))
        self.emitted: list[dict[str, Any]] = []
        self.api_version: str | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> StripeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                status, payload = server.handle(
                    self.command, self.path, body, {k.lower(): v for k, v in self.headers.items()}
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(server._ids)}")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: `stop` waits for the loop to notice, and tests start one per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- test controls ----------------------------------------------------------------

    def fail_next(
        self, count: int, status: int = 429, path_prefix: str = "", method: str = ""
    ) -> None:
        with self._lock:
            self._failures.extend([(method, path_prefix, status)] * count)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_write]

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def seed_customer(self, customer_id: str, metadata: dict[str, str] | None = None) -> None:
        obj = self._obj("customer", customer_id, metadata=metadata or {})
        self.state.customers[customer_id] = obj

    def seed_subscription(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        *,
        status: str = "active",
        subscription_id: str | None = None,
        period_start: int | None = None,
        period_end: int | None = None,
    ) -> dict[str, Any]:
        """items: (price id or lookup key, quantity). Prices must exist already."""
        with self._lock:
            sub_id = subscription_id or self._id("sub")
            start = period_start or int(time.time()) - 86400
            end = period_end or start + 30 * 86400
            sub = self._obj(
                "subscription",
                sub_id,
                customer=customer_id,
                status=status,
                created=start,
                cancel_at=None,
                canceled_at=None,
                ended_at=None,
                trial_end=None,
                cancel_at_period_end=False,
                schedule=None,
                metadata={},
                items={"object": "list", "data": [], "has_more": False, "url": ""},
            )
            for ref, qty in items:
                sub["items"]["data"].append(
                    self._item(sub_id, self._price_ref(ref), qty, start, end)
                )
            self.state.subscriptions[sub_id] = sub
            return sub

    def seed_event(self, event: dict[str, Any], *, delivered: bool = True) -> None:
        with self._lock:
            self.state.events[event["id"]] = event
            if not delivered:
                self.state.undelivered.add(event["id"])

    def emit(
        self, type_: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Records the event Stripe would send for a state change (also listable)."""
        with self._lock:
            data: dict[str, Any] = {"object": copy.deepcopy(obj)}
            if previous is not None:
                data["previous_attributes"] = copy.deepcopy(previous)
            event = self._obj(
                "event",
                self._id("evt"),
                type=type_,
                api_version=self.api_version,
                data=data,
                pending_webhooks=1,
                request={"id": None, "idempotency_key": None},
            )
            self.state.events[event["id"]] = event
            self.emitted.append(event)
            return event

    def emit_thin(
        self,
        type_: str,
        related_type: str,
        related_id: str,
        *,
        snapshot_event: str | None = None,
    ) -> dict[str, Any]:
        """The thin notification an event destination pushes for a change (Stripe's v2
        shape: RFC 3339 `created`, `related_object` with the v1 URL, no snapshot); the
        v2 event itself is retrievable at GET /v2/core/events/{id}."""
        paths = {
            "subscription": "/v1/subscriptions/",
            "invoice": "/v1/invoices/",
            "checkout.session": "/v1/checkout/sessions/",
        }
        with self._lock:
            stamp = time.time()
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
            note_id = self._id("evt_test_thin")
            note: dict[str, Any] = {
                "id": note_id,
                "object": "v2.core.event",
                "type": type_,
                "created": f"{created}.{int(stamp * 1000) % 1000:03d}Z",
                "livemode": False,
                "related_object": {
                    "id": related_id,
                    "type": related_type,
                    "url": paths[related_type] + related_id,
                },
            }
            self.state.thin_events[note_id] = {
                **note,
                "context": None,
                "reason": None,
                "changes": None,
                "snapshot_event": snapshot_event,
            }
            return copy.deepcopy(note)

    def complete_checkout(self, session_id: str, *, paid: bool = True) -> dict[str, Any]:
        """What happens when the customer finishes the hosted page: the subscription is
        created from the session (trial included) and the matching events are emitted."""
        with self._lock:
            session = self._get(self.state.checkout_sessions, session_id, "checkout session")
            params = session["_params"]
            sub_data = params.get("subscription_data", {})
            start = self._now()
            trial_days = sub_data.get("trial_period_days")
            end = start + (trial_days or 30) * 86400
            sub = self.seed_subscription(
                session["customer"],
                [(line["price"], line.get("quantity", 1)) for line in params["line_items"]],
                status="trialing" if trial_days else ("active" if paid else "incomplete"),
                period_start=start,
                period_end=end,
            )
            sub["metadata"] = sub_data.get("metadata", {})
            sub["trial_end"] = end if trial_days else None
            sub["created"] = start
            session.update(status="complete", subscription=sub["id"])
            public = {k: v for k, v in session.items() if k != "_params"}
            self.emit("customer.subscription.created", sub)
            self.emit("checkout.session.completed", public)
            return sub

    def advance_schedule(self, schedule_id: str) -> dict[str, Any]:
        """The current phase ends: the subscription moves to the next phase's items."""
        with self._lock:
            sched = self._get(self.state.subscription_schedules, schedule_id, "schedule")
            sub = self.state.subscriptions[sched["subscription"]]
            nxt = sched["phases"][1]
            previous = {"items": copy.deepcopy(sub["items"])}
            start = sched["phases"][0]["end_date"]
            end = start + 30 * 86400
            sub["items"]["data"] = [
                self._item(sub["id"], self._price_ref(i["price"]), i.get("quantity", 1), start, end)
                for i in nxt["items"]
            ]
            sched["phases"] = sched["phases"][1:]
            if sched.get("end_behavior") == "release" and len(sched["phases"]) == 1:
                sched.update(status="released", released_subscription=sub["id"])
                sub["schedule"] = None
            self.emit("customer.subscription.updated", sub, previous)
            return sub

    # -- helpers ----------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):08d}"

    def _now(self) -> int:
        return next(self._clock)

    def _obj(self, kind: str, obj_id: str, **fields: Any) -> dict[str, Any]:
        obj: dict[str, Any] = copy.deepcopy(self.templates[kind])
        obj.update({"id": obj_id, "livemode": False, "created": self._now()})
        obj.update(fields)
        return obj

    def _price_ref(self, ref: str) -> dict[str, Any]:
        if ref in self.state.prices:
            return self.state.prices[ref]
        for price in self.state.prices.values():
            if price.get("lookup_key") == ref:
                return price
        raise StripeApiError(
            404, "invalid_request_error", f"No such price: '{ref}'", "resource_missing"
        )

    def _item(
        self, sub_id: str, price: dict[str, Any], qty: int, start: int, end: int
    ) -> dict[str, Any]:
        return self._obj(
            "subscription_item",
            self._id("si"),
            subscription=sub_id,
            price=copy.deepcopy(price),
            quantity=qty,
            current_period_start=start,
            current_period_end=end,
            metadata={},
        )

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], obj_id: str, kind: str) -> dict[str, Any]:
        if obj_id not in store:
            raise StripeApiError(
                404, "invalid_request_error", f"No such {kind}: '{obj_id}'", "resource_missing"
            )
        return store[obj_id]

    @staticmethod
    def _require(params: dict[str, Any], *names: str) -> None:
        for name in names:
            if name not in params or params[name] in ("", None):
                raise StripeApiError(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}.",
                    "parameter_missing",
                )

    @staticmethod
    def _page(objs: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
        # Newest first, like Stripe.
        ordered = sorted(objs, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", 10))
        return {
            "object": "list",
            "data": ordered[:limit],
            "has_more": len(ordered) > limit,
            "url": url,
        }

    # -- dispatch ---------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, body: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        path = split.path
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if body:
            pairs += parse_qsl(body, keep_blank_values=True)
        params = decode_form(pairs)
        record = RecordedRequest(method, path, params, headers)
        with self._lock:
            self.api_version = headers.get("stripe-version", self.api_version)
            self.requests.append(record)
            self.all_requests.append(record)
            status, payload = self._handle_locked(method, path, params, headers)
            record.status = status
            return status, payload

    def _handle_locked(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        for i, (want_method, prefix, status) in enumerate(self._failures):
            if path.startswith(prefix) and want_method in ("", method):
                del self._failures[i]
                kind = "rate_limit_error" if status == 429 else "api_error"
                return status, {"error": {"type": kind, "message": f"injected {status}"}}
        if not headers.get("authorization", "").startswith("Bearer sk_"):
            return 401, {"error": {"type": "invalid_request_error", "message": "No API key."}}
        key = headers.get("idempotency-key") if method == "POST" else None
        if key and key in self._idem:
            seen_path, seen_params, status, payload = self._idem[key]
            if (seen_path, seen_params) != (path, params):
                return 400, {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                        "same parameters they were first used with.",
                    }
                }
            return status, copy.deepcopy(payload)
        try:
            status, payload = 200, self._route(method, path, params)
        except StripeApiError as exc:
            status, payload = exc.status, exc.body
        if key and status < 500:
            self._idem[key] = (path, params, status, copy.deepcopy(payload))
        return status, payload

    def _route(self, method: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if parts[:3] == ["v2", "core", "events"] and len(parts) == 4 and method == "GET":
            return self._get(self.state.thin_events, parts[3], "event")
        if parts[0] != "v1" or len(parts) < 2:
            raise StripeApiError(404, "invalid_request_error", f"Unrecognized request URL ({path})")
        res, rest = parts[1], parts[2:]
        handler = getattr(self, f"_{method.lower()}_{res.replace('-', '_')}", None)
        if res == "checkout" and rest[:1] == ["sessions"]:
            handler, rest = getattr(self, f"_{method.lower()}_checkout_sessions", None), rest[1:]
        if res == "billing_portal" and rest[:1] == ["sessions"]:
            handler, rest = getattr(self, f"_{method.lower()}_portal_sessions", None), rest[1:]
        if res == "billing_portal" and rest[:1] == ["configurations"]:
            handler = getattr(self, f"_{method.lower()}_portal_configurations", None)
            rest = rest[1:]
        if handler is None:
            raise StripeApiError(404, "invalid_request_error", f"Unrecognized request URL ({path})")
        result: dict[str, Any] = handler(rest, p, path)
        return result

    # -- products ---------------------------------------------------------------------

    def _get_products(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            return self._get(self.state.products, rest[0], "product")
        objs = list(self.state.products.values())
        if "active" in p:
            objs = [o for o in objs if o["active"] == p["active"]]
        return self._page(objs, p, path)

    def _post_products(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            obj = self._get(self.state.products, rest[0], "product")
            for k, v in p.items():
                obj[k] = {**obj.get("metadata", {}), **v} if k == "metadata" else v
            obj["updated"] = self._now()
            return obj
        self._require(p, "name")
        obj = self._obj(
            "product",
            p.get("id") or self._id("prod"),
            name=p["name"],
            description=p.get("description"),
            metadata=p.get("metadata", {}),
            active=p.get("active", True),
            default_price=None,
            type="service",
            package_dimensions=None,
        )
        self.state.products[obj["id"]] = obj
        return obj

    # -- prices -----------------------------------------------------------------------

    def _get_prices(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            return self._get(self.state.prices, rest[0], "price")
        objs = list(self.state.prices.values())
        if "lookup_keys" in p:
            keys = set(p["lookup_keys"])
            objs = [o for o in objs if o.get("lookup_key") in keys]
        if "product" in p:
            objs = [o for o in objs if o["product"] == p["product"]]
        if "active" in p:
            objs = [o for o in objs if o["active"] == p["active"]]
        return self._page(objs, p, path)

    def _take_lookup_key(self, key: str | None, transfer: bool, new_id: str) -> None:
        if not key:
            return
        for other in self.state.prices.values():
            if other.get("lookup_key") == key and other["id"] != new_id:
                if not transfer:
                    raise StripeApiError(
                        400,
                        "invalid_request_error",
                        f"A price ({other['id']}) already uses that lookup key.",
                        "lookup_key_in_use",
                    )
                other["lookup_key"] = None

    def _post_prices(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            obj = self._get(self.state.prices, rest[0], "price")
            forbidden = set(p) - {
                "active",
                "metadata",
                "lookup_key",
                "transfer_lookup_key",
                "nickname",
            }
            if forbidden:
                raise StripeApiError(
                    400,
                    "invalid_request_error",
                    f"Received unknown parameter: {sorted(forbidden)[0]}",
                )
            if "lookup_key" in p:
                self._take_lookup_key(
                    p["lookup_key"], bool(p.get("transfer_lookup_key")), obj["id"]
                )
                obj["lookup_key"] = p["lookup_key"] or None
            for k in ("active", "nickname"):
                if k in p:
                    obj[k] = p[k]
            if "metadata" in p:
                obj["metadata"] = {**obj["metadata"], **p["metadata"]}
            return obj
        self._require(p, "currency", "product", "unit_amount")
        self._get(self.state.products, p["product"], "product")
        price_id = self._id("price")
        self._take_lookup_key(p.get("lookup_key"), bool(p.get("transfer_lookup_key")), price_id)
        recurring = p.get("recurring")
        obj = self._obj(
            "price",
            price_id,
            currency=p["currency"],
            product=p["product"],
            unit_amount=p["unit_amount"],
            unit_amount_decimal=str(p["unit_amount"]),
            lookup_key=p.get("lookup_key"),
            metadata=p.get("metadata", {}),
            nickname=p.get("nickname"),
            active=p.get("active", True),
            type="recurring" if recurring else "one_time",
            transform_quantity=None,
            recurring=(
                {
                    "interval": recurring["interval"],
                    "interval_count": recurring.get("interval_count", 1),
                    "meter": None,
                    "usage_type": recurring.get("usage_type", "licensed"),
                    "trial_period_days": recurring.get("trial_period_days"),
                }
                if recurring
                else None
            ),
        )
        self.state.prices[price_id] = obj
        return obj

    # -- customers --------------------------------------------------------------------

    def _get_customers(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest == ["search"]:
            match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", p.get("query", ""))
            if not match:
                raise StripeApiError(400, "invalid_request_error", "Unsupported search query")
            k, v = match.groups()
            hits = [o for o in self.state.customers.values() if o["metadata"].get(k) == v]
            return {"object": "search_result", "data": hits, "has_more": False, "url": path}
        if rest:
            return self._get(self.state.customers, rest[0], "customer")
        objs = list(self.state.customers.values())
        if "email" in p:
            objs = [o for o in objs if o.get("email") == p["email"]]
        return self._page(objs, p, path)

    def _post_customers(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            obj = self._get(self.state.customers, rest[0], "customer")
            for k, v in p.items():
                obj[k] = {**obj["metadata"], **v} if k == "metadata" else v
            return obj
        obj = self._obj(
            "customer",
            self._id("cus"),
            email=p.get("email"),
            name=p.get("name"),
            metadata=p.get("metadata", {}),
            discount=None,
        )
        self.state.customers[obj["id"]] = obj
        return obj

    # -- checkout and portal ----------------------------------------------------------

    def _get_checkout_sessions(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if len(rest) != 1:
            raise StripeApiError(404, "invalid_request_error", "Unrecognized request URL")
        session = self._get(self.state.checkout_sessions, rest[0], "checkout session")
        return {k: v for k, v in session.items() if k != "_params"}

    def _post_checkout_sessions(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            raise StripeApiError(404, "invalid_request_error", "Unrecognized request URL")
        self._require(p, "mode", "success_url", "line_items")
        if p.get("customer"):
            self._get(self.state.customers, p["customer"], "customer")
        for line in p["line_items"]:
            price = self._get(self.state.prices, line.get("price", ""), "price")
            if not price["active"]:
                raise StripeApiError(400, "invalid_request_error", "The price is not active.")
        session_id = self._id("cs_test")
        obj = self._obj(
            "checkout.session",
            session_id,
            mode=p["mode"],
            customer=p.get("customer"),
            client_reference_id=p.get("client_reference_id"),
            success_url=p["success_url"],
            cancel_url=p.get("cancel_url"),
            metadata=p.get("metadata", {}),
            status="open",
            subscription=None,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
        )
        # Not part of Stripe's response object; kept so tests can assert what was asked for.
        self.state.checkout_sessions[session_id] = {**obj, "_params": p}
        return obj

    def _post_portal_sessions(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        self._require(p, "customer")
        self._get(self.state.customers, p["customer"], "customer")
        session_id = self._id("bps")
        obj = self._obj(
            "billing_portal.session",
            session_id,
            customer=p["customer"],
            return_url=p.get("return_url"),
            flow=None,
            url=f"https://billing.stripe.com/p/session/{session_id}",
        )
        self.state.portal_sessions[session_id] = obj
        return obj

    # -- subscriptions ----------------------------------------------------------------

    def _get_subscriptions(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            return self._get(self.state.subscriptions, rest[0], "subscription")
        objs = list(self.state.subscriptions.values())
        if "customer" in p:
            objs = [o for o in objs if o["customer"] == p["customer"]]
        status = p.get("status")
        if status is None:
            objs = [o for o in objs if o["status"] not in {"canceled", "incomplete_expired"}]
        elif status != "all":
            objs = [o for o in objs if o["status"] == status]
        return self._page(objs, p, path)

    def _post_subscriptions(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if not rest:
            raise StripeApiError(400, "invalid_request_error", "Create subscriptions via Checkout")
        sub = self._get(self.state.subscriptions, rest[0], "subscription")
        if sub.get("schedule") and "items" in p:
            raise StripeApiError(
                400,
                "invalid_request_error",
                "The subscription is managed by a subscription schedule.",
            )
        previous: dict[str, Any] = {
            k: copy.deepcopy(sub.get(k)) for k in ("items", "cancel_at_period_end") if k in p
        }
        data = sub["items"]["data"]
        start = data[0]["current_period_start"] if data else self._now()
        end = data[0]["current_period_end"] if data else start + 30 * 86400
        for change in p.get("items", []):
            if "id" in change:
                item = next((i for i in data if i["id"] == change["id"]), None)
                if item is None:
                    raise StripeApiError(404, "invalid_request_error", "No such subscription item")
                if change.get("deleted"):
                    data.remove(item)
                    continue
                if "price" in change:
                    item["price"] = copy.deepcopy(self._price_ref(change["price"]))
                if "quantity" in change:
                    item["quantity"] = change["quantity"]
            else:
                self._require(change, "price")
                data.append(
                    self._item(
                        sub["id"],
                        self._price_ref(change["price"]),
                        change.get("quantity", 1),
                        start,
                        end,
                    )
                )
        for k in ("cancel_at_period_end", "metadata", "proration_behavior"):
            if k in p:
                sub[k] = p[k]
        self.emit("customer.subscription.updated", sub, previous)
        return sub

    # -- subscription schedules -------------------------------------------------------

    def _post_subscription_schedules(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest[1:] == ["release"]:
            sched = self._get(self.state.subscription_schedules, rest[0], "subscription schedule")
            sched["status"] = "released"
            sched["released_subscription"] = sched["subscription"]
            self.state.subscriptions[sched["subscription"]]["schedule"] = None
            sched["subscription"] = None
            return sched
        if rest:
            sched = self._get(self.state.subscription_schedules, rest[0], "subscription schedule")
            if "phases" in p:
                for phase in p["phases"]:
                    for item in phase.get("items", []):
                        self._price_ref(item["price"])
                sched["phases"] = p["phases"]
            for k in ("end_behavior", "metadata"):
                if k in p:
                    sched[k] = p[k]
            return sched
        self._require(p, "from_subscription")
        sub = self._get(self.state.subscriptions, p["from_subscription"], "subscription")
        if sub.get("schedule"):
            raise StripeApiError(
                400, "invalid_request_error", "The subscription already has a schedule."
            )
        data = sub["items"]["data"]
        start = data[0]["current_period_start"] if data else self._now()
        end = data[0]["current_period_end"] if data else start
        sched_id = self._id("sub_sched")
        sched = self._obj(
            "subscription_schedule",
            sched_id,
            customer=sub["customer"],
            subscription=sub["id"],
            status="active",
            end_behavior="release",
            current_phase={"start_date": start, "end_date": end},
            phases=[
                {
                    "start_date": start,
                    "end_date": end,
                    "items": [{"price": i["price"]["id"], "quantity": i["quantity"]} for i in data],
                }
            ],
            metadata={},
        )
        sub["schedule"] = sched_id
        self.state.subscription_schedules[sched_id] = sched
        return sched

    def _get_subscription_schedules(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            return self._get(self.state.subscription_schedules, rest[0], "subscription schedule")
        return self._page(list(self.state.subscription_schedules.values()), p, path)

    # -- invoices (seeded by tests: `server.state.invoices[id] = {...}`) ----------------

    def _get_invoices(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if len(rest) != 1:
            raise StripeApiError(404, "invalid_request_error", "Unrecognized request URL")
        return self._get(self.state.invoices, rest[0], "invoice")

    # -- events -----------------------------------------------------------------------

    def _get_events(self, rest: list[str], p: dict[str, Any], path: str) -> dict[str, Any]:
        if rest:
            return self._get(self.state.events, rest[0], "event")
        objs = list(self.state.events.values())
        if "delivery_success" in p:
            want_undelivered = p["delivery_success"] is False
            objs = [o for o in objs if (o["id"] in self.state.undelivered) == want_undelivered]
        created = p.get("created")
        if isinstance(created, dict) and "gte" in created:
            objs = [o for o in objs if o["created"] >= created["gte"]]
        if "type" in p:
            objs = [o for o in objs if o["type"] == p["type"]]
        return self._page(objs, p, path)


if __name__ == "__main__":
    # Local demo: `python -m tests.support.stripe_server`, then point STRIPE_API_BASE at it.
    srv = StripeServer().start()
    print(f"local Stripe server on {srv.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
