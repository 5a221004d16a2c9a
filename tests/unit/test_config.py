"""Configuration is validated at start-up and every error names the variable."""

from __future__ import annotations

import pytest

from functions.config import (
    reset_settings_cache,
    subscriber_settings,
    webhook_settings,
)
from functions.errors import ConfigError

SECRET = "whsec_" + "a" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GOOGLE_CLOUD_PROJECT",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_EVENTS_TOPIC",
        "STRIPE_LIVEMODE",
        "WEBHOOK_TOLERANCE_SECONDS",
        "WEBHOOK_MAX_BODY_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()


def test_defaults_and_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", f" {SECRET} , whsec_old{'b' * 20} ")
    settings = webhook_settings()
    assert settings.stripe_webhook_secret == (SECRET, "whsec_old" + "b" * 20)
    assert settings.stripe_events_topic == "stripe-events"
    assert settings.entitlements_topic == "entitlement-changed"
    assert settings.dead_letter_topic == "stripe-events-dead-letter"
    assert settings.webhook_tolerance_seconds == 300
    assert settings.webhook_max_body_bytes == 1024 * 1024
    assert settings.stripe_livemode is False


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"STRIPE_WEBHOOK_SECRET": SECRET}, "GOOGLE_CLOUD_PROJECT"),
        ({"GOOGLE_CLOUD_PROJECT": "p"}, "STRIPE_WEBHOOK_SECRET"),
        (
            {"GOOGLE_CLOUD_PROJECT": "p", "STRIPE_WEBHOOK_SECRET": "sk_test_x"},
            "STRIPE_WEBHOOK_SECRET",
        ),
        ({"GOOGLE_CLOUD_PROJECT": "p", "STRIPE_WEBHOOK_SECRET": " , "}, "STRIPE_WEBHOOK_SECRET"),
        (
            {
                "GOOGLE_CLOUD_PROJECT": "p",
                "STRIPE_WEBHOOK_SECRET": SECRET,
                "STRIPE_LIVEMODE": "maybe",
            },
            "STRIPE_LIVEMODE",
        ),
        (
            {
                "GOOGLE_CLOUD_PROJECT": "p",
                "STRIPE_WEBHOOK_SECRET": SECRET,
                "WEBHOOK_TOLERANCE_SECONDS": "0",
            },
            "WEBHOOK_TOLERANCE_SECONDS",
        ),
    ],
)
def test_invalid_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=variable) as caught:
        webhook_settings()
    # The error names the variable, never echoes a secret value.
    assert "whsec_" + "a" * 32 not in str(caught.value)


def test_subscriber_does_not_need_the_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    assert subscriber_settings().google_cloud_project == "p"


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    first = webhook_settings()
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "changed")
    assert webhook_settings() is first
    reset_settings_cache()
    assert webhook_settings().google_cloud_project == "changed"
