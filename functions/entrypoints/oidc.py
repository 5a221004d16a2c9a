"""Who may push events to the subscriber and call the scheduled jobs: Google-signed OIDC.

Pub/Sub push and Cloud Scheduler attach `Authorization: Bearer <Google ID token>` for
their service account (infra/terraform/pubsub.tf, scheduler.tf). Cloud Run IAM checks it
first; these functions check it again themselves when `OIDC_AUDIENCE` is set, so a
misconfigured ingress or invoker grant does not open them (defence in depth: a forged
push would grant plans and publish entitlements). Deployed config sets it; the emulator
stack does not (the emulator's push carries no token).

Checked: RS256 signature against Google's published keys (fetched on first use and cached
for as long as the response's Cache-Control allows), expiry, audience, issuer and the
service account's verified email. A missing or invalid token is 401, a valid token for
another identity 403; either way nothing else runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

import cachecontrol
import flask
import google.auth.exceptions
import jwt
import requests
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from functions.errors import ConfigError, TransientError
from functions.log import get_logger

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# What Google's ID tokens carry (google.oauth2.id_token accepts the same two spellings).
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})


class OidcSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Unset: no check (emulator stack). Set: every request must carry a valid token.
    oidc_audience: str | None = None
    # Comma-separated: the job endpoint accepts the scheduler, the subscriber the push SA.
    oidc_service_accounts: Annotated[tuple[str, ...], NoDecode] = ()
    oidc_certs_url: str = Field(default=GOOGLE_CERTS_URL, pattern=r"^https?://")
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, values: Any) -> Any:
        if isinstance(values, dict):
            raw = values.get("oidc_service_accounts")
            if isinstance(raw, str):
                values = {**values, "oidc_service_accounts": _split_csv(raw)}
        return values

    @model_validator(mode="after")
    def _both_or_neither(self) -> OidcSettings:
        # An audience without identities (or the reverse) would be a check that admits
        # every Google-signed token, or a check that was meant but never runs.
        if bool(self.oidc_audience) != bool(self.oidc_service_accounts):
            raise ValueError("OIDC_AUDIENCE and OIDC_SERVICE_ACCOUNTS are set together")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.oidc_audience)


def _split_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@cache
def oidc_settings() -> OidcSettings:
    try:
        return OidcSettings()
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]).upper() for e in exc.errors() if e["loc"]) or "OIDC_*"
        raise ConfigError(f"invalid configuration: {names}: {exc.errors()[0]['msg']}") from None


class Unauthorized(Exception):
    """The request may not run: `status` is 401 (no valid token) or 403 (wrong caller)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@cache
def _transport() -> Request:
    # One cached session per process: the keys are fetched once, then again only when
    # Google's Cache-Control max-age has passed (Google rotates them every few days).
    return Request(session=cachecontrol.CacheControl(requests.Session()))


def verify_invoker(authorization: str | None, settings: OidcSettings) -> str | None:
    """Returns the caller's service account email (None when the check is off), or raises.

    Raises Unauthorized for a bad token and TransientError when Google's keys cannot be
    fetched (a 5xx makes Pub/Sub and the scheduler try again; nothing ran).
    """
    if not settings.enabled:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(401, "missing bearer token")
    claims = _verified_claims(token.strip(), settings)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized(401, "invalid token: wrong issuer")
    email = claims.get("email")
    if claims.get("email_verified") is not True or email not in settings.oidc_service_accounts:
        raise Unauthorized(403, "token is not for an allowed service account")
    return str(email)


def _verified_claims(token: str, settings: OidcSettings) -> Mapping[str, Any]:
    try:
        return id_token.verify_token(
            token,
            _transport(),
            audience=settings.oidc_audience,
            certs_url=settings.oidc_certs_url,
            clock_skew_in_seconds=settings.oidc_leeway_seconds,
        )
    except google.auth.exceptions.TransportError as exc:
        raise TransientError(f"cannot fetch the token signing keys: {exc}") from exc
    except (ValueError, KeyError, jwt.PyJWTError, google.auth.exceptions.GoogleAuthError) as exc:
        # ValueError: bad signature, expiry, wrong audience, malformed token (x509 keys);
        # PyJWTError: the same when the keys URL serves a JWK set.
        raise Unauthorized(401, f"invalid token: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    return text[:120]


def denied(request: flask.Request, component: str) -> flask.Response | None:
    """The response refusing this request, or None when it may run."""
    try:
        caller = verify_invoker(request.headers.get("Authorization"), oidc_settings())
    except Unauthorized as exc:
        get_logger(component=component).warning(
            "invoker_rejected", status=exc.status, reason=str(exc)
        )
        body = {"error": "unauthorized" if exc.status == 401 else "forbidden", "message": str(exc)}
        return flask.make_response(flask.jsonify(body), exc.status)
    if caller is not None:
        get_logger(component=component).debug("invoker_verified", caller=caller)
    return None
