"""Event envelopes, built from the state through the chosen shape.

An envelope is what Stripe sends (the SDK's stripe/_event.py): id, object, api_version,
created, data.object (and data.previous_attributes on `*.updated` events: the changed
top-level fields with their old values), livemode, pending_webhooks, request, type.
`request.id` names the API request that caused the event and is null for automatic
events (renewals, retries, trial ends, expiries); every event of one action shares the
action's second, as Stripe's do.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.simulator.clock import Clock, Ids
from tests.support.simulator.objects import Shape, World
from tests.support.simulator.shapes import API_VERSIONS, Json, Model, render


def changed(before: Json, after: Json) -> Json:
    """previous_attributes: the old value of every top-level field that changed."""
    return {k: copy.deepcopy(v) for k, v in before.items() if after.get(k) != v}


class Emitter:
    def __init__(self, world: World, clock: Clock, ids: Ids, shape: Shape) -> None:
        self.world = world
        self.clock = clock
        self.ids = ids
        self.shape = shape
        self.events: list[Json] = []
        self._request: dict[str, Any] = {"id": None, "idempotency_key": None}

    @contextmanager
    def api_request(self) -> Iterator[None]:
        """Events emitted inside carry one API request id and idempotency key."""
        saved = self._request
        self._request = {"id": self.ids.new("req", 14), "idempotency_key": self.ids.uuid()}
        try:
            yield
        finally:
            self._request = saved

    def render(self, obj: Model, *, upcoming: bool = False) -> Json:
        return render(self.world, obj, self.shape, upcoming=upcoming)

    def emit(
        self,
        event_type: str,
        obj: Model,
        *,
        before: Json | None = None,
        upcoming: bool = False,
    ) -> Json | None:
        """Emit `event_type` about `obj` now; with `before`, only if something changed."""
        data: Json = {"object": self.render(obj, upcoming=upcoming)}
        if before is not None:
            previous = changed(before, data["object"])
            if not previous:
                return None
            data["previous_attributes"] = previous
        if self.shape == "pre_prices" and event_type.startswith("price."):
            event_type = "plan." + event_type.removeprefix("price.")
        event: Json = {
            "id": self.ids.new("evt"),
            "object": "event",
            "api_version": API_VERSIONS[self.shape],
            "created": self.clock.now,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": dict(self._request),
            "type": event_type,
        }
        self.events.append(event)
        return event
