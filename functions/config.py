"""All configuration, read from the environment once per process and validated.

Each entry point asks only for the settings it needs (the webhook does not need the
Stripe API key, the subscriber does not need the webhook secret), so a misconfigured
variable fails the function that uses it at start-up, naming the variable.

Resource names (topics, subscriptions) live here and nowhere else: the Terraform drift
test and the local topology both read them from this module.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from functions.errors import ConfigError

# Defaults double as the canonical resource names (see tests/unit/test_infra_drift.py).
DEFAULT_STRIPE_EVENTS_TOPIC = "stripe-events"
DEFAULT_ENTITLEMENTS_TOPIC = "entitlement-changed"
DEFAULT_DEAD_LETTER_TOPIC = "stripe-events-dead-letter"
DEFAULT_STRIPE_EVENTS_SUBSCRIPTION = "stripe-events-subscriber"
DEFAULT_DEAD_LETTER_SUBSCRIPTION = "stripe-events-dead-letter-ops"

_S = TypeVar("_S", bound="CommonSettings")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    google_cloud_project: str = Field(min_length=1)
    stripe_events_topic: str = DEFAULT_STRIPE_EVENTS_TOPIC
    entitlements_topic: str = DEFAULT_ENTITLEMENTS_TOPIC
    dead_letter_topic: str = DEFAULT_DEAD_LETTER_TOPIC
    stripe_events_subscription: str = DEFAULT_STRIPE_EVENTS_SUBSCRIPTION
    dead_letter_subscription: str = DEFAULT_DEAD_LETTER_SUBSCRIPTION
    # Whether this deployment serves live-mode events (production) or test-mode ones.
    stripe_livemode: bool = False
    log_level: str = "INFO"


class WebhookSettings(CommonSettings):
    stripe_webhook_secret: Annotated[tuple[str, ...], NoDecode]
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=10 * 1024 * 1024)
    webhook_publish_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("stripe_webhook_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> tuple[str, ...]:
        # Comma-separated so an old and a new secret can both verify during rotation.
        if not isinstance(value, str):
            raise ValueError("must be a comma-separated string of whsec_ secrets")
        secrets = tuple(part.strip() for part in value.split(",") if part.strip())
        if not secrets:
            raise ValueError("at least one secret is required")
        for secret in secrets:
            if not secret.startswith("whsec_"):
                raise ValueError("every secret must start with 'whsec_'")
        return secrets


class SubscriberSettings(CommonSettings):
    # past_due keeps access this long after the first failed payment.
    grace_period_days: int = Field(default=7, ge=0, le=60)
    # Markers must outlive Stripe's 3-day retry window plus our replay horizon.
    processed_event_ttl_days: int = Field(default=35, ge=4, le=400)
    # The sweep republishes outbox entries unsent for longer than this.
    outbox_sweep_after_seconds: int = Field(default=60, ge=1)
    max_delivery_attempts: int = Field(default=5, ge=5, le=100)


class StripeApiSettings(CommonSettings):
    stripe_api_key: str = Field(min_length=1)
    # Overridable so tests (and a proxy, if ever needed) can point the SDK elsewhere.
    stripe_api_base: str = "https://api.stripe.com"
    stripe_max_requests_per_second: float = Field(default=20.0, gt=0, le=90)


class CheckoutSettings(StripeApiSettings):
    checkout_success_url: str = Field(pattern=r"^https?://")
    checkout_cancel_url: str = Field(pattern=r"^https?://")
    # From configuration only: a caller-chosen return URL would be an open redirect.
    portal_return_url: str = Field(pattern=r"^https?://")


def load_settings(cls: type[_S]) -> _S:
    """Build a settings class from the environment; ConfigError names each bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(err['loc'][0]).upper() if err['loc'] else '?'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


@cache
def webhook_settings() -> WebhookSettings:
    return load_settings(WebhookSettings)


@cache
def subscriber_settings() -> SubscriberSettings:
    return load_settings(SubscriberSettings)


@cache
def stripe_api_settings() -> StripeApiSettings:
    return load_settings(StripeApiSettings)


@cache
def checkout_settings() -> CheckoutSettings:
    return load_settings(CheckoutSettings)


DEFAULT_PROBE_SUBSCRIPTION = "entitlement-changed-probe"


class ProbeSettings(WebhookSettings):
    # The public webhook URL, as Stripe calls it (Terraform passes the function's URL).
    probe_webhook_url: str = Field(pattern=r"^https?://")
    probe_subscription: str = DEFAULT_PROBE_SUBSCRIPTION
    # Well inside the scheduler's attempt deadline; a slower pipeline is a failed probe.
    probe_timeout_seconds: float = Field(default=120.0, gt=0, le=240)


@cache
def probe_settings() -> ProbeSettings:
    return load_settings(ProbeSettings)


class ReadApiSettings(CommonSettings):
    # Firestore reads per batch or page request: bounds one request's latency and cost.
    read_api_max_batch: int = Field(default=100, ge=1, le=300)


@cache
def read_api_settings() -> ReadApiSettings:
    return load_settings(ReadApiSettings)


def reset_settings_cache() -> None:
    """Tests change the environment between cases; production never calls this."""
    read_api_settings.cache_clear()
    probe_settings.cache_clear()
    webhook_settings.cache_clear()
    subscriber_settings.cache_clear()
    stripe_api_settings.cache_clear()
    checkout_settings.cache_clear()
