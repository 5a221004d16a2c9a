"""Firestore adapter of the AuditLog port (`ops_audit/{audit_id}`)."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from functions.adapters.firestore_client import TIMEOUT, FirestoreAdapter
from functions.adapters.google_errors import google_call
from schemas.documents import AuditRecord

AUDIT = "ops_audit"


class FirestoreAuditLog(FirestoreAdapter):
    def write(self, record: AuditRecord) -> AuditRecord:
        ref = self._client().collection(AUDIT).document(record.audit_id)
        with google_call("firestore audit write"):
            ref.create(record.model_dump(mode="json"), timeout=TIMEOUT)
        return record

    def list(
        self, *, target: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[AuditRecord]:
        query: Any = self._client().collection(AUDIT)
        if target:
            query = query.where(filter=firestore.FieldFilter("target", "==", target))
        if action:
            query = query.where(filter=firestore.FieldFilter("action", "==", action))
        with google_call("firestore audit read"):
            records = [AuditRecord.model_validate(s.to_dict()) for s in query.stream()]
        # Sorted here, not in the query: equality filters plus order_by would need an index.
        records.sort(key=lambda r: r.at, reverse=True)
        return records[:limit]
