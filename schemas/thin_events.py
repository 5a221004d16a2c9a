"""Stripe's thin event notifications (`v2.core.event`), as an event destination sends them.

The shape is the one the installed SDK parses (`stripe.v2.core._event.EventNotification`
and the generated `V1...EventNotification` classes): `id`, `object: "v2.core.event"`,
`type` (for v1 resources `v1.` + the classic name, or a finer one such as
`v1.customer.subscription.past_due`), `created` as an RFC 3339 timestamp with
milliseconds (not epoch seconds as in snapshot events), `livemode`, an optional
`context` (a connected account) and `related_object` {id, type, url}. There is no
snapshot: the subscriber reads the related object's current state from Stripe. The
delivery is signed with the same `Stripe-Signature` scheme as snapshot events.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas import ids

THIN_EVENT_OBJECT = "v2.core.event"


class RelatedObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Bounded like every id we key on; the type is Stripe's object name ("subscription").
    id: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")
    type: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=1000)


class ThinEventNotification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=ids.EVENT_ID_PATTERN)
    object: Literal["v2.core.event"]
    type: str = Field(min_length=1)
    created: AwareDatetime
    livemode: bool
    context: str | None = None
    related_object: RelatedObject | None = None

    @field_validator("created", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # pydantic would read epoch seconds as a datetime too; the v2 shape is a string,
        # and a number here means a body that is neither shape.
        if not isinstance(value, str):
            raise ValueError("created must be an RFC 3339 timestamp string")
        return value

    @property
    def created_at(self) -> float:
        """Epoch seconds with Stripe's millisecond resolution."""
        return self.created.timestamp()

    @property
    def created_second(self) -> int:
        """`created` in the snapshot events' one-second resolution (rounded down)."""
        return math.floor(self.created_at)

    @property
    def object_id(self) -> str | None:
        return self.related_object.id if self.related_object else None

    @property
    def customer_id(self) -> None:
        """A notification names no customer (the object read does)."""
        return None
