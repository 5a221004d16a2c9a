"""Which Google API errors are transient: decided here once, for every Google adapter.

Firestore, Pub/Sub publishing and the dead-letter queue all map through `google_call`, so
a redelivery decision never depends on which adapter happened to see the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as gexc

from functions.errors import NotFound, TransientError, Unstorable
from schemas.ids import firestore_id_problem

# The same call may succeed in a moment. Conflict covers Aborted (transaction contention)
# and AlreadyExists on an idempotency marker (a concurrent twin won; the redelivery dedupes).
TRANSIENT: tuple[type[Exception], ...] = (
    gexc.Aborted,
    gexc.Cancelled,
    gexc.Conflict,
    gexc.DeadlineExceeded,
    gexc.GatewayTimeout,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.RetryError,
    gexc.ServiceUnavailable,
    gexc.Unknown,
)


def _expired_transaction(exc: gexc.InvalidArgument) -> bool:
    # Firestore answers INVALID_ARGUMENT for a transaction that outlived its lease
    # ("The referenced transaction has expired or is no longer valid"): a new one passes.
    # Only that one: "Transaction too big" is also INVALID_ARGUMENT, and is permanent.
    text = str(exc.message).lower()
    return "transaction" in text and ("expired" in text or "no longer valid" in text)


@contextmanager
def google_call(what: str) -> Iterator[None]:
    """Raise TransientError for what may pass, NotFound for a missing resource and
    Unstorable for a request Google refuses as invalid (a key Firestore cannot store, an
    oversized value): the same request would be refused again.

    Anything else (PermissionDenied, ...) propagates unchanged: the caller's own rule
    applies (the subscriber treats an unexpected error as transient).
    """
    try:
        yield
    except gexc.NotFound as exc:
        raise NotFound(f"{what}: not found: {exc.message}") from exc
    except gexc.InvalidArgument as exc:
        if _expired_transaction(exc):
            raise TransientError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        raise Unstorable(f"{what}: refused as invalid: {exc.message}") from exc
    except TRANSIENT as exc:
        raise TransientError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def document_id(value: str) -> str:
    """`value` if Firestore can store it as a document id; Unstorable (never retried) if
    not, before the client library raises ValueError or the server InvalidArgument."""
    problem = firestore_id_problem(value)
    if problem:
        shown = value if len(value) <= 60 else f"{value[:40]}... ({len(value)} chars)"
        raise Unstorable(f"document id {shown!r} {problem}")
    return value
