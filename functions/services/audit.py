"""Operator audit records: built here, written through the AuditLog port.

Separate from a customer's `history` (which records state transitions) because some
operator actions touch no customer (purging the dead-letter queue) and because the
audit must say who acted, which a state transition does not know.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from schemas.documents import AuditRecord


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
