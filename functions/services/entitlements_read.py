"""Current entitlements for a Dataface account or Stripe customer, read from our records.

No Stripe call on this path: the record is the state the stream announced (or is about to:
the record commits before its outbox entry is relayed, so a read can be one version ahead
of the stream, never behind). Consumers merge both by keeping the highest version.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from threading import Lock

import statemachine
from functions.ports import BillingRepository
from schemas.entitlements import CurrentEntitlements
from schemas.read_api import BatchGetResponse, EntitlementsPage, NotFound
from statemachine.synthetic import is_synthetic

# Account links are written once (the first customer to name an account keeps it), so a
# link read a minute ago is still right; caching it saves one of the two Firestore reads
# of a lookup by account. Only found links are cached: a new signup is visible at once.
LINK_TTL_SECONDS = 60.0
LINK_CACHE_SIZE = 100_000


class _LinkCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = Lock()
        self._clock = clock

    def get(self, account_id: str) -> str | None:
        with self._lock:
            entry = self._entries.get(account_id)
            if entry is None or entry[1] <= self._clock():
                return None
            self._entries.move_to_end(account_id)
            return entry[0]

    def put(self, account_id: str, customer_id: str) -> None:
        with self._lock:
            self._entries[account_id] = (customer_id, self._clock() + LINK_TTL_SECONDS)
            self._entries.move_to_end(account_id)
            while len(self._entries) > LINK_CACHE_SIZE:
                self._entries.popitem(last=False)


class EntitlementReader:
    def __init__(
        self, repo: BillingRepository, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._repo = repo
        self._links = _LinkCache(clock)

    def by_customer(self, customer_id: str) -> CurrentEntitlements | None:
        record = self._repo.get_record(customer_id)
        return statemachine.current_entitlements(record) if record else None

    def by_account(self, account_id: str) -> CurrentEntitlements | None:
        customer_id = self._links.get(account_id)
        if customer_id is None:
            customer_id = self._repo.customer_for_account(account_id)
            if customer_id is None:
                return None
            self._links.put(account_id, customer_id)
        return self.by_customer(customer_id)

    def batch(self, account_ids: Sequence[str], customer_ids: Sequence[str]) -> BatchGetResponse:
        linked = self._repo.customers_for_accounts(account_ids) if account_ids else {}
        wanted = list(dict.fromkeys([*linked.values(), *customer_ids]))
        records = self._repo.get_records(wanted)
        found = [statemachine.current_entitlements(records[c]) for c in wanted if c in records]
        return BatchGetResponse(
            entitlements=found,
            not_found=NotFound(
                account_ids=[a for a in account_ids if linked.get(a) not in records],
                customer_ids=[c for c in customer_ids if c not in records],
            ),
        )

    def page(self, after: str | None, size: int) -> EntitlementsPage:
        records = self._repo.records_page(after, size)
        real = [r for r in records if not is_synthetic(r.customer_id)]
        return EntitlementsPage(
            entitlements=[statemachine.current_entitlements(r) for r in real],
            next_page_token=records[-1].customer_id if len(records) == size else None,
        )
