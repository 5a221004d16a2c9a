"""Signed Stripe webhook requests for tests, exactly Stripe's scheme.

`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, each v1 an HMAC-SHA256 with one
endpoint secret over `f"{t}.{body}"`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

# One implementation of Stripe's scheme (plain hmac, not the SDK, so the webhook is tested
# against the scheme rather than the SDK against itself); shared with the demo and bench.
from infra.local.signing import sign, signature

__all__ = ["encode", "sign", "signature", "signed_headers", "stripe_event"]


def stripe_event(
    event_type: str = "customer.subscription.updated",
    *,
    customer: str | None = "cus_test123",
    object_id: str = "sub_test123",
    livemode: bool = False,
    created: int | None = None,
    event_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": object_id, "object": "subscription", "status": "active"}
    if customer is not None:
        obj["customer"] = customer
    obj.update(extra or {})
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created if created is not None else int(time.time()),
        "livemode": livemode,
        "type": event_type,
        "data": {"object": obj},
    }


def encode(event: dict[str, Any]) -> bytes:
    # Stripe pretty-prints; the exact bytes matter because they are what gets signed.
    return json.dumps(event, indent=2).encode()


def signed_headers(
    body: bytes, secrets: Sequence[str], timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Stripe-Signature": sign(body, secrets, ts), "Content-Type": "application/json"}
