"""The one port to Stripe's API, and its adapter over the official SDK.

Everything that talks to Stripe (catalog sync, checkout, portal, plan changes, the on-call
CLI's reads) goes through `StripeGateway`, which speaks plain dicts (Stripe's JSON) so
callers never depend on SDK object types and tests can point the SDK at a local server
that speaks Stripe's wire format.

Choices:
- The API version is pinned in STRIPE_API_VERSION and sent on every request. It equals the
  version the installed SDK was generated for (a unit test fails when an SDK upgrade moves
  it), so an upgrade of either is a deliberate, reviewed change.
- Every create carries an idempotency key chosen by the caller (derived from our ids where
  a duplicate would hurt, e.g. one Customer per account), and retries reuse that key, so a
  retried create can never produce a second object.
- Retries: the SDK retries connection errors, 409 and 5xx (max_network_retries) with
  exponential backoff. It does not retry a plain 429, so `_call` retries RateLimitError
  itself with capped exponential backoff and jitter.
- A client-side token bucket (stripe_max_requests_per_second) paces every request, so a
  bulk read (reconcile, DLQ triage) stays under Stripe's rate limit instead of living on 429s.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import stripe

from functions.config import StripeApiSettings
from functions.errors import StripeRejected, StripeUnavailable
from functions.log import get_logger

if TYPE_CHECKING:
    # The SDK's request types, generated from Stripe's OpenAPI spec for the pinned version:
    # a parameter that version lacks is a mypy error here and in every caller.
    from stripe.params import (
        CustomerCreateParams,
        EventListParams,
        PriceCreateParams,
        PriceListParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
        SubscriptionListParams,
        SubscriptionScheduleCreateParams,
        SubscriptionScheduleUpdateParams,
        SubscriptionUpdateParams,
        WebhookEndpointCreateParams,
        WebhookEndpointUpdateParams,
    )
    from stripe.params.billing_portal import ConfigurationUpdateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

# Pinned once; must match the SDK's generated version (tests/integration/test_stripe_gateway.py).
STRIPE_API_VERSION = "2026-10-28.endive"

_PAGE = 100
_T = TypeVar("_T")


class TokenBucket:
    """Allows `rate` calls per second on average with bursts up to `capacity`."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Takes one token, sleeping until one is available; returns the time slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        if wait > 0:
            self._sleep(wait)
        return wait


class SdkStripeGateway:
    """StripeGateway over `stripe.StripeClient`."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "https://api.stripe.com",
        max_requests_per_second: float = 20.0,
        max_network_retries: int = 3,
        max_rate_limit_retries: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
        )
        self._bucket = TokenBucket(max_requests_per_second, sleep=sleep)
        self._rate_limit_retries = max_rate_limit_retries
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: StripeApiSettings) -> SdkStripeGateway:
        return cls(
            settings.stripe_api_key,
            api_base=settings.stripe_api_base,
            max_requests_per_second=settings.stripe_max_requests_per_second,
        )

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        attempt = 0
        while True:
            self._bucket.acquire()
            try:
                return fn()
            except stripe.RateLimitError as exc:
                if attempt >= self._rate_limit_retries:
                    raise StripeUnavailable(f"stripe {what}: rate limited") from exc
                attempt += 1
                delay = min(self._backoff_initial * 2 ** (attempt - 1), self._backoff_max)
                # Full jitter keeps concurrent instances from retrying in lock-step.
                delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311
                get_logger(component="stripe_gateway").warning(
                    "stripe_rate_limited", what=what, attempt=attempt, delay=delay
                )
                self._sleep(delay)
            except stripe.APIConnectionError as exc:
                raise StripeUnavailable(f"stripe {what}: connection failed") from exc
            except stripe.StripeError as exc:
                status = exc.http_status
                if status is not None and status >= 500:
                    raise StripeUnavailable(f"stripe {what}: HTTP {status}") from exc
                raise StripeRejected(
                    f"stripe {what}: {exc.user_message or type(exc).__name__}",
                    http_status=status,
                    code=exc.code,
                ) from exc

    @staticmethod
    def _dict(obj: Any) -> dict[str, Any]:
        # for_json: the SDK turns Stripe's decimal strings (unit_amount_decimal, ...) into
        # Decimal; callers get the wire format back, so catch-up can re-encode an event.
        return cast(dict[str, Any], obj.to_dict(for_json=True))

    def _paginate(
        self, what: str, page: Callable[[Any], Any], params: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        # Manual pagination (not auto_paging_iter) so every page passes the token bucket.
        cursor: str | None = None
        while True:
            query = {**params, "limit": _PAGE}
            if cursor:
                query["starting_after"] = cursor
            result = self._call(what, lambda q=query: page(q))  # type: ignore[misc]
            data = [self._dict(item) for item in result.data]
            yield from data
            if not result.has_more or not data:
                return
            cursor = data[-1]["id"]

    @staticmethod
    def _opts(idempotency_key: str) -> stripe.RequestOptions:
        if not idempotency_key:
            raise ValueError("every create needs an idempotency key")
        return {"idempotency_key": idempotency_key}

    # -- catalog ------------------------------------------------------------------------

    def list_products(self) -> list[dict[str, Any]]:
        # List, not search: search is eventually consistent, so a product created a moment
        # ago could be missed and created twice.
        v1 = self._client.v1
        return list(self._paginate("list products", v1.products.list, {}))

    def create_product(
        self, params: ProductCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create product",
                lambda: self._client.v1.products.create(params, opts),
            )
        )

    def update_product(self, product_id: str, params: ProductUpdateParams) -> dict[str, Any]:
        return self._dict(
            self._call(
                "update product",
                lambda: self._client.v1.products.update(product_id, params),
            )
        )

    def list_prices(
        self, *, lookup_keys: Sequence[str] | None = None, product: str | None = None
    ) -> list[dict[str, Any]]:
        params: PriceListParams = {}
        if lookup_keys is not None:
            if not lookup_keys:
                return []
            params["lookup_keys"] = list(lookup_keys)
        if product is not None:
            params["product"] = product
        v1 = self._client.v1
        return list(self._paginate("list prices", v1.prices.list, params))

    def create_price(self, params: PriceCreateParams, *, idempotency_key: str) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call("create price", lambda: self._client.v1.prices.create(params, opts))
        )

    def update_price(self, price_id: str, params: PriceUpdateParams) -> dict[str, Any]:
        return self._dict(
            self._call(
                "update price",
                lambda: self._client.v1.prices.update(price_id, params),
            )
        )

    # -- customers and sessions ---------------------------------------------------------

    def create_customer(
        self, params: CustomerCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create customer",
                lambda: self._client.v1.customers.create(params, opts),
            )
        )

    def create_checkout_session(
        self, params: CheckoutSessionCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create checkout session",
                lambda: self._client.v1.checkout.sessions.create(params, opts),
            )
        )

    def create_portal_session(
        self, params: PortalSessionCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create portal session",
                lambda: self._client.v1.billing_portal.sessions.create(params, opts),
            )
        )

    # -- subscriptions ------------------------------------------------------------------

    def list_customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        # status=all: on-call needs canceled and incomplete ones too, not just live ones.
        v1 = self._client.v1
        filters: SubscriptionListParams = {"customer": customer_id, "status": "all"}
        return list(self._paginate("list subscriptions", v1.subscriptions.list, filters))

    def update_subscription(
        self, subscription_id: str, params: SubscriptionUpdateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "update subscription",
                lambda: self._client.v1.subscriptions.update(subscription_id, params, opts),
            )
        )

    def create_subscription_schedule(
        self, params: SubscriptionScheduleCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create subscription schedule",
                lambda: self._client.v1.subscription_schedules.create(params, opts),
            )
        )

    def update_subscription_schedule(
        self, schedule_id: str, params: SubscriptionScheduleUpdateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "update subscription schedule",
                lambda: self._client.v1.subscription_schedules.update(schedule_id, params, opts),
            )
        )

    def release_subscription_schedule(
        self, schedule_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "release subscription schedule",
                lambda: self._client.v1.subscription_schedules.release(schedule_id, None, opts),
            )
        )

    # -- events -------------------------------------------------------------------------

    def list_undelivered_events(self, created_gte: int) -> list[dict[str, Any]]:
        v1 = self._client.v1
        filters: EventListParams = {"delivery_success": False, "created": {"gte": created_gte}}
        return list(self._paginate("list events", v1.events.list, filters))

    # -- webhook endpoint and portal configuration (configuration as code) --------------

    def list_webhook_endpoints(self) -> list[dict[str, Any]]:
        v1 = self._client.v1
        return list(self._paginate("list webhook endpoints", v1.webhook_endpoints.list, {}))

    def create_webhook_endpoint(
        self, params: WebhookEndpointCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        opts = self._opts(idempotency_key)
        return self._dict(
            self._call(
                "create webhook endpoint",
                lambda: self._client.v1.webhook_endpoints.create(params, opts),
            )
        )

    def update_webhook_endpoint(
        self, endpoint_id: str, params: WebhookEndpointUpdateParams
    ) -> dict[str, Any]:
        return self._dict(
            self._call(
                "update webhook endpoint",
                lambda: self._client.v1.webhook_endpoints.update(endpoint_id, params),
            )
        )

    def list_portal_configurations(self) -> list[dict[str, Any]]:
        v1 = self._client.v1
        return list(
            self._paginate(
                "list portal configurations",
                v1.billing_portal.configurations.list,
                {},
            )
        )

    def update_portal_configuration(
        self, configuration_id: str, params: ConfigurationUpdateParams
    ) -> dict[str, Any]:
        return self._dict(
            self._call(
                "update portal configuration",
                lambda: self._client.v1.billing_portal.configurations.update(
                    configuration_id, params
                ),
            )
        )

    # -- thin events: a related object's current state ----------------------------------

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._dict(
            self._call(
                "retrieve subscription",
                lambda: self._client.v1.subscriptions.retrieve(subscription_id),
            )
        )

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._dict(
            self._call("retrieve invoice", lambda: self._client.v1.invoices.retrieve(invoice_id))
        )

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return self._dict(
            self._call(
                "retrieve checkout session",
                lambda: self._client.v1.checkout.sessions.retrieve(session_id),
            )
        )

    def retrieve_thin_event(self, event_id: str) -> dict[str, Any]:
        return self._dict(
            self._call("retrieve v2 event", lambda: self._client.v2.core.events.retrieve(event_id))
        )
