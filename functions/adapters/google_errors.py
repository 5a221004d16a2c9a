"""Which Google API errors are transient: decided here once, for every Google adapter.

Firestore, Pub/Sub publishing and the dead-letter queue all map through `google_call`, so
a redelivery decision never depends on which adapter happened to see the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as gexc

from functions.errors import NotFound, TransientError

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


@contextmanager
def google_call(what: str) -> Iterator[None]:
    """Raise TransientError for what may pass and NotFound for a missing resource.

    Anything else (InvalidArgument, PermissionDenied, ...) propagates unchanged: the
    caller's own rule applies (the subscriber treats an unexpected error as transient).
    """
    try:
        yield
    except gexc.NotFound as exc:
        raise NotFound(f"{what}: not found: {exc.message}") from exc
    except TRANSIENT as exc:
        raise TransientError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
