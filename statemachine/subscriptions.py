"""Which of a customer's subscriptions governs their access (the stated rule for several).

Stripe lets one customer hold several subscriptions. Access is that of the best one:
1. by standing: paid live (active, trialing, past_due) > held (paused, unpaid) >
   unpaid signup (incomplete) > ended (canceled, incomplete_expired). So an unpaid
   `incomplete` subscription never displaces one the customer pays for.
2. then the bigger plan (catalog rank), so a second, smaller subscription does not take
   access away;
3. then the one we already track (no flapping between equals), then the newest.
The event path (statemachine/ordering.py) follows rule 1 on its own and records an anomaly
for two paid live subscriptions; reconcile resolves it with this function.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.catalog import Catalog, Plan
from schemas.stripe import Subscription

STANDING: dict[str, int] = {
    "active": 3,
    "trialing": 3,
    "past_due": 3,
    "paused": 2,
    "unpaid": 2,
    "incomplete": 1,
    "canceled": 0,
    "incomplete_expired": 0,
}


def _plan_rank(sub: Subscription, catalog: Catalog) -> int:
    for item in sub.items.data:
        entry = catalog.recognise(item.price.lookup_key, item.price.metadata.get("dataface_id"))
        if isinstance(entry, Plan):
            return entry.rank
    return 0


def governing(
    subscriptions: Iterable[Subscription], tracked_id: str | None, catalog: Catalog
) -> Subscription | None:
    """The subscription whose state the customer's record should follow (None: none)."""

    def key(sub: Subscription) -> tuple[int, int, bool, int]:
        standing = STANDING[sub.status]
        # Among ended subscriptions the plan is moot: keep the one we track.
        rank = _plan_rank(sub, catalog) if standing else 0
        return (standing, rank, sub.id == tracked_id, sub.created)

    return max(subscriptions, key=key, default=None)
