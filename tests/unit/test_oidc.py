"""The push / scheduler OIDC check, run for real: google-auth verifies RS256 tokens minted
with a local key against certificates served by a local HTTP server (no Google client is
patched). Each way a token can be wrong is refused with the status the endpoint answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import flask
import pytest

from functions.entrypoints import jobs
from functions.entrypoints.oidc import (
    OidcSettings,
    Unauthorized,
    oidc_settings,
    verify_invoker,
)
from functions.errors import ConfigError, TransientError
from tests.support.oidc import (
    PUSH_ACCOUNT,
    SCHEDULER_ACCOUNT,
    CertsServer,
    SigningKey,
    unsigned_token,
)

AUDIENCE = "https://process-stripe-event-123456.europe-west1.run.app"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def certs(key: SigningKey) -> Iterator[CertsServer]:
    with CertsServer(key) as server:
        yield server


def settings(certs: CertsServer, accounts: str = PUSH_ACCOUNT) -> OidcSettings:
    return OidcSettings(
        oidc_audience=AUDIENCE, oidc_service_accounts=accounts, oidc_certs_url=certs.url
    )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refusal(authorization: str | None, config: OidcSettings) -> int:
    with pytest.raises(Unauthorized) as caught:
        verify_invoker(authorization, config)
    return caught.value.status


def test_a_token_from_the_expected_account_is_accepted(key: SigningKey, certs: CertsServer) -> None:
    token = key.token(audience=AUDIENCE)
    assert verify_invoker(bearer(token), settings(certs)) == PUSH_ACCOUNT


def test_the_keys_are_fetched_once_and_then_served_from_the_cache(
    key: SigningKey, certs: CertsServer
) -> None:
    for _ in range(5):
        verify_invoker(bearer(key.token(audience=AUDIENCE)), settings(certs))
    assert certs.fetches == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("missing header", 401),
        ("not bearer", 401),
        ("unsigned", 401),
        ("other key", 401),
        ("tampered", 401),
        ("wrong audience", 401),
        ("wrong issuer", 401),
        ("expired", 401),
        ("issued in the future", 401),
        ("wrong email", 403),
        ("unverified email", 403),
        ("no email", 403),
    ],
)
def test_every_bad_token_is_refused(
    key: SigningKey, certs: CertsServer, case: str, status: int
) -> None:
    now = int(time.time())
    good = key.token(audience=AUDIENCE)
    header, payload, signature = good.split(".")
    authorization = {
        "missing header": None,
        "not bearer": f"Basic {good}",
        "unsigned": bearer(unsigned_token(AUDIENCE)),
        "other key": bearer(SigningKey().token(audience=AUDIENCE)),
        "tampered": bearer(
            f"{header}.{key.token(audience=AUDIENCE + 'x').split('.')[1]}.{signature}"
        ),
        "wrong audience": bearer(key.token(audience="https://relay-sweep.run.app")),
        "wrong issuer": bearer(key.token(audience=AUDIENCE, issuer="https://evil.example")),
        "expired": bearer(key.token(audience=AUDIENCE, issued=now - 7200, ttl=3600)),
        "issued in the future": bearer(key.token(audience=AUDIENCE, issued=now + 3600)),
        "wrong email": bearer(key.token(audience=AUDIENCE, email=SCHEDULER_ACCOUNT)),
        "unverified email": bearer(key.token(audience=AUDIENCE, email_verified=False)),
        "no email": bearer(key.token(audience=AUDIENCE, email=None)),
    }[case]
    assert payload  # the tampered case swaps in another token's claims
    assert refusal(authorization, settings(certs)) == status


def test_several_allowed_accounts_each_pass(key: SigningKey, certs: CertsServer) -> None:
    config = settings(certs, accounts=f"{PUSH_ACCOUNT}, {SCHEDULER_ACCOUNT}")
    for email in (PUSH_ACCOUNT, SCHEDULER_ACCOUNT):
        assert verify_invoker(bearer(key.token(audience=AUDIENCE, email=email)), config) == email


def test_unreachable_keys_are_transient_not_a_refusal(key: SigningKey) -> None:
    with CertsServer(key) as server:
        url = server.url
    config = OidcSettings(
        oidc_audience=AUDIENCE, oidc_service_accounts=PUSH_ACCOUNT, oidc_certs_url=url
    )
    with pytest.raises(TransientError):
        verify_invoker(bearer(key.token(audience=AUDIENCE)), config)


def test_off_when_unconfigured_and_half_a_configuration_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert verify_invoker(None, OidcSettings()) is None
    oidc_settings.cache_clear()
    monkeypatch.setenv("OIDC_AUDIENCE", AUDIENCE)
    with pytest.raises(ConfigError, match="OIDC"):
        oidc_settings()
    oidc_settings.cache_clear()


def test_job_endpoints_refuse_before_building_anything(
    key: SigningKey, certs: CertsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No GOOGLE_CLOUD_PROJECT: reaching the service would raise ConfigError, not answer.
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setenv("OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("OIDC_SERVICE_ACCOUNTS", SCHEDULER_ACCOUNT)
    monkeypatch.setenv("OIDC_CERTS_URL", certs.url)
    oidc_settings.cache_clear()
    app = flask.Flask(__name__)
    forged = {"Authorization": bearer(key.token(audience=AUDIENCE, email=PUSH_ACCOUNT))}
    try:
        for headers, status in (({}, 401), (forged, 403)):
            with app.test_request_context("/", method="POST", headers=headers):
                assert jobs.handle_sweep_request().status_code == status
                assert jobs.handle_reevaluate_request().status_code == status
                assert jobs.handle_reconcile_all_request(flask.request).status_code == status
    finally:
        oidc_settings.cache_clear()
