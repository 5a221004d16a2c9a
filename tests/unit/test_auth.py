"""The bearer token check in front of the checkout, portal and plan-change functions."""

from __future__ import annotations

import time

import jwt
import pytest

from functions.entrypoints.auth import AuthSettings, Unauthenticated, issue_token, verify_bearer

SECRET = "s" * 40
SETTINGS = AuthSettings(internal_auth_secret=SECRET)


def test_valid_token_yields_its_account() -> None:
    token = issue_token("acct_42", SECRET)
    assert verify_bearer(f"Bearer {token}", SETTINGS) == "acct_42"
    assert verify_bearer(f"bearer   {token}", SETTINGS) == "acct_42"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz"])
def test_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        verify_bearer(header, SETTINGS)


def test_wrong_secret_is_rejected() -> None:
    token = issue_token("acct_42", "x" * 40)
    with pytest.raises(Unauthenticated, match="InvalidSignatureError"):
        verify_bearer(f"Bearer {token}", SETTINGS)


def test_expired_token_is_rejected_beyond_leeway() -> None:
    token = issue_token("acct_42", SECRET, ttl_seconds=60, now=time.time() - 200)
    with pytest.raises(Unauthenticated, match="ExpiredSignatureError"):
        verify_bearer(f"Bearer {token}", SETTINGS)


def test_wrong_audience_is_rejected() -> None:
    token = issue_token("acct_42", SECRET, audience="someone-else")
    with pytest.raises(Unauthenticated, match="InvalidAudienceError"):
        verify_bearer(f"Bearer {token}", SETTINGS)


def test_long_lived_token_is_rejected_even_if_unexpired() -> None:
    token = issue_token("acct_42", SECRET, ttl_seconds=86_400)
    with pytest.raises(Unauthenticated, match="lifetime"):
        verify_bearer(f"Bearer {token}", SETTINGS)


def test_unsigned_and_other_algorithm_tokens_are_rejected() -> None:
    now = int(time.time())
    claims = {"sub": "acct_42", "aud": "dataface-billing", "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    hs512 = jwt.encode(claims, SECRET * 2, algorithm="HS512")
    for token in (unsigned, hs512):
        with pytest.raises(Unauthenticated):
            verify_bearer(f"Bearer {token}", SETTINGS)


def test_token_without_subject_or_iat_is_rejected() -> None:
    now = int(time.time())
    no_sub = jwt.encode({"aud": "dataface-billing", "iat": now, "exp": now + 60}, SECRET)
    no_iat = jwt.encode({"sub": "a", "aud": "dataface-billing", "exp": now + 60}, SECRET)
    for token in (no_sub, no_iat):
        with pytest.raises(Unauthenticated):
            verify_bearer(f"Bearer {token}", SETTINGS)


def test_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        AuthSettings(internal_auth_secret="too-short")


def test_rotation_accepts_either_key_until_the_old_one_is_dropped() -> None:
    new, old = "n" * 40, "o" * 40
    during = AuthSettings(internal_auth_secret=f"{new}, {old}")
    after = AuthSettings(internal_auth_secret=new)
    from_old, from_new = issue_token("acct_1", old), issue_token("acct_2", new)
    assert verify_bearer(f"Bearer {from_old}", during) == "acct_1"
    assert verify_bearer(f"Bearer {from_new}", during) == "acct_2"
    assert verify_bearer(f"Bearer {from_new}", after) == "acct_2"
    with pytest.raises(Unauthenticated, match="InvalidSignatureError"):
        verify_bearer(f"Bearer {from_old}", after)


def test_a_token_failing_for_another_reason_is_not_retried_with_the_next_key() -> None:
    expired = issue_token("acct_1", "o" * 40, ttl_seconds=60, now=time.time() - 200)
    with pytest.raises(Unauthenticated, match="ExpiredSignatureError"):
        verify_bearer(
            f"Bearer {expired}", AuthSettings(internal_auth_secret="n" * 40 + "," + "o" * 40)
        )


def test_every_key_of_a_rotation_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        AuthSettings(internal_auth_secret="n" * 40 + ",short")
