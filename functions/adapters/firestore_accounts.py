"""`accounts/{account_id}`: which Stripe customer belongs to which Dataface account.

The checkout function creates the link (first writer wins, so two concurrent checkouts for
one account agree on one customer); the subscriber keeps it current from webhook events and
preserves `trial_used`. Portal and plan changes read it: the customer they act on always
comes from here, never from the request.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc

from functions.adapters.firestore_client import TIMEOUT, FirestoreAdapter
from functions.adapters.google_errors import document_id, google_call
from functions.errors import TransientError
from schemas.documents import AccountLink

ACCOUNTS = "accounts"


class FirestoreAccountStore(FirestoreAdapter):
    def _doc(self, account_id: str) -> Any:
        return self._client().collection(ACCOUNTS).document(document_id(account_id))

    def get(self, account_id: str) -> AccountLink | None:
        with google_call("firestore get account"):
            snap = self._doc(account_id).get(timeout=TIMEOUT)
        return AccountLink.model_validate(snap.to_dict()) if snap.exists else None

    def link(self, account_id: str, customer_id: str, now: int) -> AccountLink:
        link = AccountLink(account_id=account_id, customer_id=customer_id, linked_at=now)
        with google_call("firestore link account"):
            try:
                self._doc(account_id).create(link.model_dump(mode="json"), timeout=TIMEOUT)
            except gexc.AlreadyExists:  # before google_call: here it is an answer, not an error
                return self._existing(account_id)
        return link

    def _existing(self, account_id: str) -> AccountLink:
        # First writer wins: the link another checkout created is the one to use.
        existing = self.get(account_id)
        if existing is None:  # deleted in between: extremely unlikely, retry is safe
            raise TransientError("account link vanished while linking")
        return existing

    def mark_trial_used(self, account_id: str) -> None:
        with google_call("firestore mark trial"):
            self._doc(account_id).update({"trial_used": True}, timeout=TIMEOUT)
