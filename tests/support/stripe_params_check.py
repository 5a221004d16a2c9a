"""Checks requests as they arrived at the local Stripe server against the SDK's `stripe.params`
TypedDicts (generated from Stripe's OpenAPI spec for the pinned API version).

mypy checks the requests our code builds; this checks what actually went over the wire,
including anything built around the types (a `cast`, a dict from data), so a parameter
the pinned version lacks fails a test instead of answering 400 in production. Key names
are checked at every depth, and string values against the spec's Literals (event types,
proration behaviours, API versions). Scalars arrive form-encoded as strings, so their
types are not checked.

`ROUTES` names the params type of each request we send; a request with parameters on a
route it does not know fails, so a new kind of request must be added here.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

import stripe.params as p
import stripe.params.billing_portal as bp
import stripe.params.checkout as co
from stripe._stripe_context import StripeContext
from typing_extensions import is_typeddict

from tests.support.stripe_server import RecordedRequest

_ID = r"[A-Za-z0-9_]+"
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/v1/products", p.ProductListParams),
    ("POST", r"/v1/products", p.ProductCreateParams),
    ("POST", rf"/v1/products/{_ID}", p.ProductUpdateParams),
    ("GET", r"/v1/prices", p.PriceListParams),
    ("POST", r"/v1/prices", p.PriceCreateParams),
    ("POST", rf"/v1/prices/{_ID}", p.PriceUpdateParams),
    ("GET", r"/v1/customers", p.CustomerListParams),
    ("GET", r"/v1/customers/search", p.CustomerSearchParams),
    ("POST", r"/v1/customers", p.CustomerCreateParams),
    ("POST", r"/v1/checkout/sessions", co.SessionCreateParams),
    ("POST", r"/v1/billing_portal/sessions", bp.SessionCreateParams),
    ("GET", r"/v1/subscriptions", p.SubscriptionListParams),
    ("POST", rf"/v1/subscriptions/{_ID}", p.SubscriptionUpdateParams),
    ("POST", r"/v1/subscription_schedules", p.SubscriptionScheduleCreateParams),
    ("POST", rf"/v1/subscription_schedules/{_ID}", p.SubscriptionScheduleUpdateParams),
    ("POST", rf"/v1/subscription_schedules/{_ID}/release", p.SubscriptionScheduleReleaseParams),
    ("GET", r"/v1/subscription_schedules", p.SubscriptionScheduleListParams),
    ("GET", r"/v1/events", p.EventListParams),
    ("GET", r"/v1/webhook_endpoints", p.WebhookEndpointListParams),
    ("POST", r"/v1/webhook_endpoints", p.WebhookEndpointCreateParams),
    ("POST", rf"/v1/webhook_endpoints/{_ID}", p.WebhookEndpointUpdateParams),
    ("GET", r"/v1/billing_portal/configurations", bp.ConfigurationListParams),
    ("POST", r"/v1/billing_portal/configurations", bp.ConfigurationCreateParams),
    ("POST", rf"/v1/billing_portal/configurations/{_ID}", bp.ConfigurationUpdateParams),
]
_UNION_TYPES = (Union, types.UnionType)


def params_type(method: str, path: str) -> Any | None:
    for want_method, pattern, typed in ROUTES:
        if method == want_method and re.fullmatch(pattern, path):
            return typed
    return None


# Names the SDK imports for type checking only (RequestOptions' stripe_context).
_TYPE_ONLY_NAMES: dict[str, Any] = {"StripeContext": StripeContext, "Mapping": Mapping}


@functools.cache
def _hints(typed: Any) -> dict[str, Any]:
    return typing.get_type_hints(typed, localns=_TYPE_ONLY_NAMES, include_extras=True)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) in (NotRequired, Required):
        tp = get_args(tp)[0]
    return tp


def problems(value: Any, tp: Any, where: str = "") -> list[str]:
    """What in `value` the type `tp` does not allow (empty: it conforms)."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where.rstrip('.') or '.'}: expected an object, got {value!r}"]
        hints = _hints(tp)
        found = [f"{where}{k}: not a parameter of {tp.__name__}" for k in value if k not in hints]
        for key, item in value.items():
            if key in hints:
                found += problems(item, hints[key], f"{where}{key}.")
        return found
    if origin in _UNION_TYPES:
        branches = [problems(value, arg, where) for arg in get_args(tp)]
        if any(not b for b in branches):
            return []
        return min(branches, key=len)
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return []
        shown = allowed if len(allowed) <= 8 else f"{len(allowed)} values"
        return [f"{where.rstrip('.')}: {value!r} is not one the pinned version allows ({shown})"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where.rstrip('.')}: expected a list, got {value!r}"]
        (item_type,) = get_args(tp)
        return [x for i, v in enumerate(value) for x in problems(v, item_type, f"{where}{i}.")]
    if origin is dict or (isinstance(tp, type) and issubclass(tp, dict)) or origin is not None:
        # Dict[str, str] metadata, UntypedStripeObject, Mapping: free-form by design.
        return [] if isinstance(value, dict) else [f"{where.rstrip('.')}: expected an object"]
    if isinstance(value, (dict, list)):
        return [f"{where.rstrip('.')}: expected a scalar, got {value!r}"]
    return []


def request_problems(requests: Iterable[RecordedRequest]) -> list[str]:
    """Every parameter that was sent and is not in the pinned version's params types."""
    found: list[str] = []
    for req in requests:
        if not req.params:
            continue
        typed = params_type(req.method, req.path)
        if typed is None:
            found.append(f"{req.method} {req.path}: no params type in ROUTES for {req.params}")
            continue
        found += [f"{req.method} {req.path}: {x}" for x in problems(req.params, typed)]
    return found
