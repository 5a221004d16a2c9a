"""Current entitlements per customer, kept by the v1 contract's one rule: highest version wins.

Thread-safe: the Pub/Sub callback threads and the application's request threads share it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from pydantic import ValidationError

from schemas.entitlements import (
    SYNTHETIC_ATTRIBUTE,
    AccessLevel,
    EntitlementChanged,
    EntitlementState,
    Limits,
)


class Applied(StrEnum):
    APPLIED = "applied"  # newer than what we held: now current
    GAP = "gap"  # newer, but versions were skipped (still in flight); applied anyway
    STALE = "stale"  # not newer (a redelivery or a late message): ignored
    SYNTHETIC = "synthetic"  # a probe message: ignored
    INVALID = "invalid"  # not a v1 message: ignored, and the caller should alert


class EntitlementsCache:
    def __init__(self, on_gap: Callable[[str, int, int], None] | None = None) -> None:
        self._by_customer: dict[str, EntitlementState] = {}
        self._customer_of_account: dict[str, str] = {}
        self._lock = threading.Lock()
        # Called with (customer id, version held, version received) after a gap.
        self._on_gap = on_gap

    def apply_message(self, data: bytes, attributes: Mapping[str, str]) -> Applied:
        """One entitlement-changed message as delivered (bytes and attributes)."""
        if attributes.get(SYNTHETIC_ATTRIBUTE) == "true":
            return Applied.SYNTHETIC
        try:
            message = EntitlementChanged.model_validate_json(data)
        except ValidationError:
            return Applied.INVALID
        return self.apply(message)

    def apply(self, state: EntitlementState) -> Applied:
        """A message or a read-API answer: kept only when its version is higher."""
        with self._lock:
            held = self._by_customer.get(state.customer_id)
            held_version = held.version if held else 0
            if held is not None and state.version <= held_version:
                return Applied.STALE
            self._by_customer[state.customer_id] = state
            if state.account_id:
                self._customer_of_account[state.account_id] = state.customer_id
        # A message after a read (held > 0) must be exactly one higher; after nothing, a
        # first message other than 1 means earlier ones went by before we subscribed.
        gap = isinstance(state, EntitlementChanged) and state.version > held_version + 1
        if gap and self._on_gap is not None:
            self._on_gap(state.customer_id, held_version, state.version)
        return Applied.GAP if gap else Applied.APPLIED

    def load(self, states: Iterable[EntitlementState]) -> int:
        """A snapshot from the read API; returns how many states were newer than held."""
        return sum(self.apply(state) is not Applied.STALE for state in states)

    def state(self, account_id: str) -> EntitlementState | None:
        with self._lock:
            customer_id = self._customer_of_account.get(account_id)
            return self._by_customer.get(customer_id) if customer_id else None

    def for_customer(self, customer_id: str) -> EntitlementState | None:
        with self._lock:
            return self._by_customer.get(customer_id)

    def can(self, account_id: str, feature: str) -> bool:
        """Whether the account may use `feature` now. Unknown account or feature: False."""
        state = self.state(account_id)
        if state is None or state.access is AccessLevel.NONE:
            return False
        return feature in state.entitlements.features

    def limit(self, account_id: str, name: str) -> int:
        """The account's limit `name` (see Limits); 0 for an unknown account or limit."""
        state = self.state(account_id)
        if state is None or name not in Limits.model_fields:
            return 0
        return int(getattr(state.entitlements.limits, name))

    def customers(self) -> int:
        with self._lock:
            return len(self._by_customer)

    def states(self) -> list[EntitlementState]:
        with self._lock:
            return list(self._by_customer.values())
