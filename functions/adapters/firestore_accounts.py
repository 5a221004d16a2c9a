"""`accounts/{account_id}`: which Stripe customer belongs to which Dataface account.

The checkout function creates the link (first writer wins, so two concurrent checkouts for
one account agree on one customer); the subscriber keeps it current from webhook events and
preserves `trial_used`. Portal and plan changes read it: the customer they act on always
comes from here, never from the request.
"""

from __future__ import annotations

from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import firestore

from functions.errors import TransientError
from schemas.documents import AccountLink

ACCOUNTS = "accounts"
_TIMEOUT = 10.0


class AccountStore(Protocol):
    def get(self, account_id: str) -> AccountLink | None: ...

    def link(self, account_id: str, customer_id: str, now: int) -> AccountLink:
        """Creates the link unless one exists; returns whichever link is stored."""
        ...

    def mark_trial_used(self, account_id: str) -> None: ...


class FirestoreAccountStore:
    def __init__(self, project: str, database: str = "(default)") -> None:
        self._project = project
        self._database = database
        self._db: firestore.Client | None = None

    def _doc(self, account_id: str) -> Any:
        if self._db is None:
            self._db = firestore.Client(project=self._project, database=self._database)
        return self._db.collection(ACCOUNTS).document(account_id)

    def get(self, account_id: str) -> AccountLink | None:
        try:
            snap = self._doc(account_id).get(timeout=_TIMEOUT)
        except gexc.GoogleAPICallError as exc:
            raise TransientError(f"firestore get account failed: {type(exc).__name__}") from exc
        return AccountLink.model_validate(snap.to_dict()) if snap.exists else None

    def link(self, account_id: str, customer_id: str, now: int) -> AccountLink:
        link = AccountLink(account_id=account_id, customer_id=customer_id, linked_at=now)
        try:
            self._doc(account_id).create(link.model_dump(mode="json"), timeout=_TIMEOUT)
            return link
        except gexc.AlreadyExists:
            existing = self.get(account_id)
            if existing is None:  # deleted in between: extremely unlikely, retry is safe
                raise TransientError("account link vanished while linking") from None
            return existing
        except gexc.GoogleAPICallError as exc:
            raise TransientError(f"firestore link account failed: {type(exc).__name__}") from exc

    def mark_trial_used(self, account_id: str) -> None:
        try:
            self._doc(account_id).update({"trial_used": True}, timeout=_TIMEOUT)
        except gexc.GoogleAPICallError as exc:
            raise TransientError(f"firestore mark trial failed: {type(exc).__name__}") from exc
