"""Who may call the checkout, portal and plan-change functions, and for which account.

Two layers. In production Cloud Functions IAM lets only our own services' service accounts
invoke these functions at all. On top of that, each request carries
`Authorization: Bearer <token>`: a short-lived HS256 JWT our product backend mints for the
signed-in account (`sub` = account id, `aud` = "dataface-billing", `exp` within
`INTERNAL_AUTH_MAX_TTL_SECONDS` of `iat`). The functions act only for that account, so a
bug or a compromised caller cannot open another account's portal or change its plan.
Locally (no IAM) the token is the whole check, which is what the tests exercise.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import jwt
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.errors import ConfigError

AUDIENCE = "dataface-billing"
# A separate audience for the read API, so a token minted for one account's checkout
# cannot read every account's entitlements.
READ_AUDIENCE = "dataface-entitlements"
_ALGORITHM = "HS256"
_MIN_KEY_LENGTH = 32


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Comma-separated keys, each 32+ bytes (HS256 with a short secret is brute-forceable
    # offline from one token). A token signed with any of them is accepted, so a rotation
    # can run "new,old" while the product backend switches: no window of 401s.
    internal_auth_secret: SecretStr
    internal_auth_audience: str = AUDIENCE
    # Tokens living longer than this are refused even if their exp says otherwise.
    internal_auth_max_ttl_seconds: int = Field(default=300, ge=10, le=3600)
    internal_auth_leeway_seconds: int = Field(default=30, ge=0, le=120)

    @field_validator("internal_auth_secret")
    @classmethod
    def _keys_long_enough(cls, value: SecretStr) -> SecretStr:
        keys = value.get_secret_value().split(",")
        if any(len(key.strip()) < _MIN_KEY_LENGTH for key in keys):
            raise ValueError(f"every key must be at least {_MIN_KEY_LENGTH} characters")
        return value

    def signing_keys(self) -> list[str]:
        return [key.strip() for key in self.internal_auth_secret.get_secret_value().split(",")]


@cache
def auth_settings() -> AuthSettings:
    try:
        return AuthSettings()
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]).upper() for e in exc.errors() if e["loc"])
        raise ConfigError(f"invalid configuration: {names}") from None


class Unauthenticated(Exception):
    """No valid bearer token: answer 401 and do nothing else."""


def issue_token(
    account_id: str,
    secret: str,
    *,
    audience: str = AUDIENCE,
    ttl_seconds: int = 60,
    now: float | None = None,
) -> str:
    """What our backend does to call these functions (also used by tests and the CLI)."""
    issued = int(now if now is not None else time.time())
    claims = {"sub": account_id, "aud": audience, "iat": issued, "exp": issued + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify_bearer(
    authorization: str | None, settings: AuthSettings, audience: str | None = None
) -> str:
    """Returns the subject the token was minted for, or raises Unauthenticated.

    The subject is an account id for checkout, portal and plan change; for the read API
    (`audience=READ_AUDIENCE`) it names the calling service.
    """
    if not authorization:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("expected 'Authorization: Bearer <token>'")
    claims = _decode(token.strip(), settings, audience or settings.internal_auth_audience)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated("invalid token: no subject")
    if int(claims["exp"]) - int(claims["iat"]) > settings.internal_auth_max_ttl_seconds:
        raise Unauthenticated("invalid token: lifetime longer than allowed")
    return sub


def _decode(token: str, settings: AuthSettings, audience: str) -> dict[str, Any]:
    error: jwt.PyJWTError = jwt.InvalidSignatureError("no key")
    for key in settings.signing_keys():
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                # Pinned: never let the token choose its algorithm ("none", or RS/HS confusion).
                algorithms=[_ALGORITHM],
                audience=audience,
                leeway=settings.internal_auth_leeway_seconds,
                options={"require": ["sub", "aud", "exp", "iat"]},
            )
        except jwt.InvalidSignatureError as exc:
            error = exc  # perhaps signed with the other key of a rotation
            continue
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        return claims
    raise Unauthenticated(f"invalid token: {type(error).__name__}")
