"""Which ids we accept, checked before anything is written under them.

Ids become Firestore document ids (`customers/{customer}`, `processed_events/{event}`,
`accounts/{account}`, `failures/{key}`). Firestore refuses an id that contains `/`, is
`.` or `..`, matches `__.*__`, or is longer than 1,500 bytes, and the client library
raises ValueError for some of them before sending anything. An event carrying such an id
can never succeed, so it is refused at the boundary (a PermanentError, dead-lettered at
once) rather than found out by a write that is then retried.

Stripe ids are a type prefix, an underscore and letters and digits (`cus_NffrFeUfNV2Hib`,
`evt_1NG8Du2eZvKYlo2CUI79vXWy`; test fixtures and some of Stripe's own ids use further
underscores). Stripe documents no length (its OpenAPI spec types ids as strings of up to
5,000 characters, real ones are under 40) and counts changing an id's length or format,
prefix included, as backwards-compatible. So the bound is our choice and generous: 255
characters, `[A-Za-z0-9_]` after the prefix. Should Stripe ever send an id outside it,
the event is parked in the dead-letter queue with the reason, not lost: widen the rule
and replay. Any id of this shape is also a valid Firestore id.

Account ids are ours (checkout writes them into the Stripe customer's and subscription's
metadata and the session's `client_reference_id`): a letter or digit, then up to 127
letters, digits, `_` or `-`. That shape cannot hit any Firestore rule either.
"""

from __future__ import annotations

import hashlib
import re

STRIPE_ID_MAX_LENGTH = 255
FIRESTORE_ID_MAX_BYTES = 1500
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"


def stripe_id_pattern(prefix: str) -> str:
    body = STRIPE_ID_MAX_LENGTH - len(prefix) - 1
    return rf"^{prefix}_[A-Za-z0-9_]{{1,{body}}}$"


EVENT_ID_PATTERN = stripe_id_pattern("evt")
CUSTOMER_ID_PATTERN = stripe_id_pattern("cus")
SUBSCRIPTION_ID_PATTERN = stripe_id_pattern("sub")

_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_RESERVED = re.compile(r"^__.*__$", re.DOTALL)
# Failure keys stay short enough for a Pub/Sub attribute and a readable document path.
_MAX_KEY_BYTES = 200
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} chars)"


def firestore_id_problem(value: str) -> str | None:
    """Why Firestore would refuse `value` as a document id, or None when it would not."""
    if not value:
        return "is empty"
    if "/" in value:
        return "contains '/'"
    if value in (".", ".."):
        return f"is {value!r}"
    if _RESERVED.match(value):
        return "matches Firestore's reserved __.*__"
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > FIRESTORE_ID_MAX_BYTES:
        return f"is {size} bytes, over Firestore's {FIRESTORE_ID_MAX_BYTES}"
    return None


def customer_id_problem(value: object) -> str | None:
    """Why `value` is not a Stripe customer id we can store, or None."""
    if not isinstance(value, str):
        return f"is {type(value).__name__} {_shown(value)}, not a customer id"
    if not _CUSTOMER_ID.match(value):
        return f"{_shown(value)} is not a Stripe customer id (cus_ + letters and digits)"
    return None


def account_id_problem(value: object) -> str | None:
    """Why `value` is not one of our account ids, or None."""
    if not isinstance(value, str) or not _ACCOUNT_ID.match(value):
        return f"{_shown(value)} is not an account id ({ACCOUNT_ID_PATTERN})"
    return None


def storable_key(value: str) -> str:
    """A document id for a failure record that Firestore always accepts.

    A short, valid id is kept as it is (billing-ops finds the failure by event id). Any
    other is replaced by a readable prefix and a hash of the whole value, so the record of
    an event with a 10 KB id, or an id with `/`, can still be written and found again.
    """
    if firestore_id_problem(value) is None and len(value.encode()) <= _MAX_KEY_BYTES:
        return value
    raw = value.encode("utf-8", errors="surrogatepass")
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return f"hashed-{_SAFE_CHARS.sub('_', value[:48])}-{digest}"
