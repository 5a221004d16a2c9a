"""In-memory AuditLog for unit tests of operator commands.

It keeps the real adapter's contract (tests/integration/test_audit_log_contract.py runs
one suite against both this and FirestoreAuditLog on the emulator): `write` returns the
record it was given; `list` filters by target and action, newest first, at most `limit`,
and returns records as they were stored, i.e. through JSON (a tuple in `details` comes
back as a list); an audit id is written once, a second write of it raises TransientError
(Firestore's AlreadyExists) and keeps the first.

`fail_writes_with`: set an exception to make every write fail with it, like an
unavailable Firestore (TransientError) would.
"""

from __future__ import annotations

import builtins
import threading

from functions.errors import TransientError
from schemas.documents import AuditRecord


class FakeAuditLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, AuditRecord] = {}
        self.fail_writes_with: Exception | None = None

    def write(self, record: AuditRecord) -> AuditRecord:
        if self.fail_writes_with is not None:
            raise self.fail_writes_with
        stored = AuditRecord.model_validate(record.model_dump(mode="json"))
        with self._lock:
            if record.audit_id in self._records:
                raise TransientError(
                    f"audit write failed: AlreadyExists: audit {record.audit_id!r} exists"
                )
            self._records[record.audit_id] = stored
        return record

    def list(
        self, *, target: str | None = None, action: str | None = None, limit: int = 50
    ) -> builtins.list[AuditRecord]:
        with self._lock:
            # Firestore streams in document-id order; the sort by time below is stable.
            records = [self._records[key] for key in sorted(self._records)]
        if target:
            records = [r for r in records if r.target == target]
        if action:
            records = [r for r in records if r.action == action]
        records.sort(key=lambda r: r.at, reverse=True)
        return [r.model_copy(deep=True) for r in records[:limit]]
