"""Current entitlements for a Dataface account or Stripe customer, read from our records.

No Stripe call on this path: the record is the state the stream announced (or is about to:
the record commits before its outbox entry is relayed, so a read can be one version ahead
of the stream, never behind). Consumers merge both by keeping the highest version.
"""

from __future__ import annotations

from collections.abc import Sequence

import statemachine
from functions.ports import BillingRepository
from schemas.entitlements import CurrentEntitlements
from schemas.read_api import BatchGetResponse, EntitlementsPage, NotFound


class EntitlementReader:
    def __init__(self, repo: BillingRepository) -> None:
        self._repo = repo

    def by_customer(self, customer_id: str) -> CurrentEntitlements | None:
        record = self._repo.get_record(customer_id)
        return statemachine.current_entitlements(record) if record else None

    def by_account(self, account_id: str) -> CurrentEntitlements | None:
        customer_id = self._repo.customer_for_account(account_id)
        return self.by_customer(customer_id) if customer_id else None

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
        return EntitlementsPage(
            entitlements=[statemachine.current_entitlements(r) for r in records],
            next_page_token=records[-1].customer_id if len(records) == size else None,
        )
