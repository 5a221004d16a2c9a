"""Our Stripe requests against the pinned version's request types (the SDK's stripe.params).

mypy (make typecheck) checks the keys our code writes; these check the values that come
from data (event types, the API version) and that the wire-level check used by every
integration test (tests/integration/conftest.py) really fails on what Stripe would refuse.
"""

from __future__ import annotations

from typing import get_args

import stripe
import stripe.params as p
import stripe.params.billing_portal as bp
import stripe.params.checkout as co

from functions.adapters.stripe_gateway import STRIPE_API_VERSION
from functions.services.endpoint_sync import (
    EndpointPlan,
    _create_params,
    _update_params,
    desired_events,
)
from functions.services.portal_sync import CANCELLATION_REASONS, desired_features
from statemachine import HANDLED_EVENT_TYPES
from tests.support.stripe_params_check import _hints, _unwrap, problems, request_problems
from tests.support.stripe_server import RecordedRequest


def _literal_values(typed: object, key: str) -> set[str]:
    found: set[str] = set()
    stack = [_unwrap(_hints(typed)[key])]
    while stack:
        tp = stack.pop()
        args = get_args(tp)
        if all(isinstance(a, str) for a in args) and args:
            found.update(args)
        else:
            stack.extend(args)
    return found


def test_the_pin_is_the_sdks_and_a_version_an_endpoint_can_take() -> None:
    assert stripe._api_version._ApiVersion.CURRENT == STRIPE_API_VERSION
    assert STRIPE_API_VERSION in _literal_values(p.WebhookEndpointCreateParams, "api_version")
    # Stripe sets an endpoint's version at creation only: the update type has no such key.
    assert "api_version" not in _hints(p.WebhookEndpointUpdateParams)


def test_every_handled_event_type_is_one_the_pinned_version_can_send() -> None:
    allowed = _literal_values(p.WebhookEndpointCreateParams, "enabled_events")
    assert desired_events() == sorted(HANDLED_EVENT_TYPES)
    assert sorted(HANDLED_EVENT_TYPES - allowed) == []


def test_endpoint_requests_conform_values_included() -> None:
    fields = {"url": "https://x.test/h", "enabled_events": desired_events()}
    plan = EndpointPlan("create", "https://x.test/h", STRIPE_API_VERSION, fields=fields)
    assert problems(_create_params(plan), p.WebhookEndpointCreateParams) == []
    update = EndpointPlan("update", "https://x.test/h", STRIPE_API_VERSION, "we_1", fields)
    assert problems(_update_params(update), p.WebhookEndpointUpdateParams) == []


def test_portal_features_conform_reasons_included() -> None:
    features = desired_features([{"product": "prod_1", "prices": ["price_1"]}])
    assert problems({"features": features}, bp.ConfigurationUpdateParams) == []
    # Reasons are an open enum in the spec (any string), so the check accepts new ones;
    # ours are all among Stripe's documented values.
    options = _literal_values(
        bp.ConfigurationUpdateParamsFeaturesSubscriptionCancelCancellationReason, "options"
    )
    assert set(CANCELLATION_REASONS) <= options


def test_check_fails_on_parameters_the_pinned_version_removed_or_reshaped() -> None:
    # Endive removed Checkout's payment_method_types (allowed_payment_method_types now).
    checkout = {"mode": "subscription", "payment_method_types": ["card"]}
    assert problems(checkout, co.SessionCreateParams) == [
        "payment_method_types: not a parameter of SessionCreateParams"
    ]
    assert problems({"mode": "subscription"}, co.SessionCreateParams) == []
    # ...and made a subscription update's billing_cycle_anchor an object.
    assert problems({"billing_cycle_anchor": "1767225600"}, p.SubscriptionUpdateParams) != []
    nested = {"subscription_data": {"metadata": {"a": "b"}, "trial_days": "30"}}
    assert problems(nested, co.SessionCreateParams) == [
        "subscription_data.trial_days: not a parameter of SessionCreateParamsSubscriptionData"
    ]
    bad_event = {"url": "https://x", "enabled_events": ["invoice.paid", "invoice.nope"]}
    assert len(problems(bad_event, p.WebhookEndpointCreateParams)) == 1


def test_wire_check_names_the_request_and_refuses_unknown_routes() -> None:
    sent = [
        RecordedRequest("POST", "/v1/webhook_endpoints/we_1", {"api_version": "x"}, {}),
        RecordedRequest("POST", "/v1/prices", {"currency": "usd", "unit_amount": 5}, {}),
        RecordedRequest("GET", "/v1/products/prod_1", {}, {}),
        RecordedRequest("POST", "/v1/coupons", {"percent_off": "5"}, {}),
    ]
    assert request_problems(sent) == [
        "POST /v1/webhook_endpoints/we_1: api_version: not a parameter of "
        "WebhookEndpointUpdateParams",
        "POST /v1/coupons: no params type in ROUTES for {'percent_off': '5'}",
    ]
