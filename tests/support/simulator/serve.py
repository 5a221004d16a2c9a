"""Put the simulator's Stripe into tests/support/stripe_server.py, so our real gateway,
reconcile and catch-up read it over HTTP with the official SDK.

The server's list endpoints page `state.<kind>` newest first and filter what our gateway
asks for: GET /v1/subscriptions?customer=..&status=all, GET /v1/prices?lookup_keys[]=..,
GET /v1/products, GET /v1/events?delivery_success=false&created[gte]=... Objects are
stored in the simulator's shape; events as emitted. `undelivered` names the events whose
webhook delivery failed (what catch-up lists).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tests.support.simulator.events import Emitter
from tests.support.simulator.objects import World

if TYPE_CHECKING:
    from tests.support.stripe_server import State, StripeServer


def serve(world: World, emitter: Emitter, state: State, undelivered: Iterable[str] = ()) -> State:
    """Write products, prices, customers, subscriptions, schedules, checkout sessions and
    events into `state` (replacing objects with the same id); returns it."""
    render = emitter.render
    for store, objs in (
        (state.products, world.products.values()),
        (state.prices, world.prices.values()),
        (state.customers, world.customers.values()),
        (state.subscriptions, world.subscriptions.values()),
        (state.subscription_schedules, world.schedules.values()),
        (state.checkout_sessions, world.sessions.values()),
    ):
        for obj in objs:
            store[obj.id] = render(obj)
    for event in emitter.events:
        state.events[event["id"]] = copy.deepcopy(event)
    failed = set(undelivered)
    missing = failed - set(state.events)
    if missing:
        raise KeyError(f"not emitted: {sorted(missing)}")
    state.undelivered.update(failed)
    return state


def load_into(
    world: World, emitter: Emitter, server: StripeServer, undelivered: Iterable[str] = ()
) -> None:
    """`serve` into a running StripeServer's state, under its lock."""
    with server._lock:
        serve(world, emitter, server.state, undelivered)
