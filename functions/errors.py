"""The one exception hierarchy: it decides what happens to a failed message or request.

TransientError: the same input may succeed later. Raised out of the function so Pub/Sub
redelivers (with backoff) and, after the configured attempts, dead-letters it; an HTTP
entry point answers 503 so the caller retries. Contention and unavailability belong here.
Which Google errors are transient is decided once, in functions/adapters/google_errors.py.

PermanentError: retrying cannot help (bad payload, a refused Stripe request, a resource
that does not exist). The subscriber records the reason where on-call sees it and
publishes the message to the dead-letter topic itself, then acknowledges, so the
customer's ordering key is not held for the whole retry budget.

ConfigError: the deployment itself is wrong (a missing or invalid variable). Neither
retrying the message nor dead-lettering it is the fix; it is raised at start-up naming
the variable, and a message that meets it is redelivered until the configuration is fixed.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error our code raises on purpose."""


class TransientError(BillingError):
    """Worth retrying: the same input may succeed later."""


class RelayDeferred(TransientError):
    """The change is committed, but publishing its entitlement message failed.

    Nothing is lost: the outbox entry stays unsent, and a redelivery, the customer's next
    change or the sweep publishes it. `committed` is what the transaction wrote.
    """

    def __init__(self, message: str, committed: object) -> None:
        super().__init__(message)
        self.committed = committed


class PermanentError(BillingError):
    """Not worth retrying: the input itself is at fault."""

    reason_code = "permanent"


class InvalidPayload(PermanentError):
    reason_code = "invalid_payload"


class Unstorable(PermanentError):
    """Firestore refuses the key or the request (InvalidArgument): the same write would be
    refused again, so it is never retried."""

    reason_code = "unstorable"


class NotFound(PermanentError):
    """A resource we were configured or asked to use does not exist."""

    reason_code = "not_found"


class ConfigError(BillingError):
    """Start-up configuration is missing or invalid; the message names the variable."""


class StripeUnavailable(TransientError):
    """Stripe could not be reached or kept failing (429/5xx after retries)."""


class StripeRejected(PermanentError):
    """Stripe refused the request (4xx): retrying the same request cannot help."""

    reason_code = "stripe_rejected"

    def __init__(self, message: str, *, http_status: int | None, code: str | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
