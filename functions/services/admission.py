"""What an event must be before anything is written for it: the one place that decides an
event can never succeed.

A handled event (statemachine.HANDLED_EVENT_TYPES) must name a customer we can store
(`customers/{id}` is its key) and must not be dated past the present plus the skew the
ordering rule allows. Anything else raises InvalidPayload, which the subscriber records
and dead-letters at once with the reason: retrying cannot change the bytes, and a retry
would hold the customer's ordering key for the whole retry budget. What the domain's
models refuse later (a quantity out of bounds, an account id that is no key, a
subscription id of the wrong shape) takes the same route through pydantic.

Events we do not handle are only marked processed (their id is already checked by the
envelope model), so nothing else about them is judged here.
"""

from __future__ import annotations

import statemachine
from functions.errors import InvalidPayload
from schemas.ids import customer_id_problem
from schemas.stripe import StripeEvent, customer_ref
from statemachine.ordering import implausible_created


def admit(event: StripeEvent, now: float) -> str | None:
    """The customer a handled event is about (None: an event we do not apply)."""
    if not statemachine.is_handled_event_type(event.type):
        return None
    ref = customer_ref(event.data.object)
    if ref is None and event.type == "checkout.session.completed":
        # A session without a customer (a payment link, a guest) is nothing of ours.
        return None
    problem = "is missing" if ref is None else customer_id_problem(ref)
    if problem or not isinstance(ref, str):
        raise InvalidPayload(f"{event.type} {event.id}: data.object customer {problem}")
    late = implausible_created(event.created, now)
    if late:
        raise InvalidPayload(f"{event.type} {event.id}: {late}")
    return ref
