"""The one exception hierarchy that decides what happens to a failed message.

TransientError: raised out of the function so Pub/Sub redelivers (with backoff) and, after
the configured attempts, dead-letters it. Contention and unavailability belong here.

PermanentError: retrying cannot help (bad payload, unknown schema). The subscriber records
the reason where on-call sees it and publishes the message to the dead-letter topic itself,
then acknowledges, so the customer's ordering key is not held for the whole retry budget.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error our code raises on purpose."""


class TransientError(BillingError):
    """Worth retrying: the same input may succeed later."""


class PermanentError(BillingError):
    """Not worth retrying: the input itself is at fault."""

    reason_code = "permanent"


class InvalidPayload(PermanentError):
    reason_code = "invalid_payload"


class UnknownSchema(PermanentError):
    reason_code = "unknown_schema"
