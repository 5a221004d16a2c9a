"""The operator audit log: who did what to which target, why, and when (`ops_audit`).

Separate from a customer's `history` (which records state transitions) because some
operator actions touch no customer (purging the dead-letter queue) and because the
audit must say who acted, which a state transition does not know.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field

from functions.errors import TransientError

AUDIT = "ops_audit"
_TIMEOUT = 10.0


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    audit_id: str
    actor: str
    action: str  # e.g. dlq.replay, dlq.purge, override.set, override.clear, reconcile
    target: str  # a customer id, an event id, or the queue name
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    at: float


def default_actor() -> str:
    """`--actor` default: the operator's login, so the audit never says 'unknown' by accident."""
    for var in ("BILLING_OPS_ACTOR", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_record(
    actor: str, action: str, target: str, reason: str = "", **details: Any
) -> AuditRecord:
    return AuditRecord(
        audit_id=f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}",
        actor=actor,
        action=action,
        target=target,
        reason=reason,
        details=details,
        at=time.time(),
    )


class AuditLog:
    def __init__(self, project: str, database: str = "(default)") -> None:
        self._project = project
        self._database = database
        self._db: firestore.Client | None = None

    def _client(self) -> firestore.Client:
        if self._db is None:
            self._db = firestore.Client(project=self._project, database=self._database)
        return self._db

    def write(self, record: AuditRecord) -> AuditRecord:
        ref = self._client().collection(AUDIT).document(record.audit_id)
        try:
            ref.create(record.model_dump(mode="json"), timeout=_TIMEOUT)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError) as exc:
            raise TransientError(f"audit write failed: {type(exc).__name__}") from exc
        return record

    def list(
        self, *, target: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[AuditRecord]:
        query: Any = self._client().collection(AUDIT)
        if target:
            query = query.where(filter=firestore.FieldFilter("target", "==", target))
        if action:
            query = query.where(filter=firestore.FieldFilter("action", "==", action))
        try:
            records = [AuditRecord.model_validate(s.to_dict()) for s in query.stream()]
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError) as exc:
            raise TransientError(f"audit read failed: {type(exc).__name__}") from exc
        # Sorted here, not in the query: equality filters plus order_by would need an index.
        records.sort(key=lambda r: r.at, reverse=True)
        return records[:limit]
