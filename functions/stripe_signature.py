"""Stripe's webhook signature scheme, for whatever plays Stripe: the synthetic probe, local
tools and tests.

`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, each v1 an HMAC-SHA256 with one
endpoint secret over `f"{t}.{body}"`. Stripe sends one v1 per active secret while a
rolled secret is still valid.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def signature(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    parts = [f"t={timestamp}"] + [f"v1={signature(body, s, timestamp)}" for s in secrets]
    return ",".join(parts)
