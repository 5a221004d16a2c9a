"""In-memory AccountStore for unit tests of checkout, portal and plan changes.

It keeps the real adapter's contract (tests/integration/test_account_store_contract.py
runs one suite against both this and FirestoreAccountStore on the emulator): an unknown
account reads as None, the first link written wins and every later `link` returns it
unchanged, `trial_used` survives later links, an id Firestore cannot store raises
Unstorable (a PermanentError) before anything is written, and marking the trial of an account that
has no link raises NotFound and creates nothing.

In Firestore the repository writes the same `accounts/` documents when an event links an
account; pass `links=fake_repository.accounts` to share them the same way.
"""

from __future__ import annotations

import threading

from functions.adapters.google_errors import document_id
from functions.errors import NotFound
from schemas.documents import AccountLink


class FakeAccountStore:
    def __init__(self, links: dict[str, AccountLink] | None = None) -> None:
        self._lock = threading.Lock()
        self.links: dict[str, AccountLink] = {} if links is None else links

    def get(self, account_id: str) -> AccountLink | None:
        with self._lock:
            link = self.links.get(document_id(account_id))
            return link.model_copy() if link else None

    def link(self, account_id: str, customer_id: str, now: int) -> AccountLink:
        with self._lock:
            stored = self.links.get(document_id(account_id))
            if stored is None:
                stored = AccountLink(account_id=account_id, customer_id=customer_id, linked_at=now)
                self.links[account_id] = stored
            return stored.model_copy()

    def mark_trial_used(self, account_id: str) -> None:
        with self._lock:
            link = self.links.get(document_id(account_id))
            if link is None:
                raise NotFound(f"mark trial: not found: no account link {account_id!r}")
            self.links[account_id] = link.model_copy(update={"trial_used": True})
