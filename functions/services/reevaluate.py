"""Scheduled re-evaluation: access that changes with time alone, with no Stripe event.

Grace after a failed payment runs out, an operator override expires, a cancelled
subscription reaches its period end. Stripe may send nothing at that moment, so a
scheduled job asks the domain again. Each customer goes through the same transactional
path as an event (marker, history, outbox); the operation id names the record version
it was planned against, so two overlapping runs apply it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import statemachine
from functions.log import get_logger
from functions.ports import BillingRepository, Operation
from functions.services.relay import OutboxRelay
from schemas.documents import BillingRecord
from statemachine.decision import Decision, Policy


@dataclass(frozen=True)
class ReevaluateResult:
    checked: int
    changed: int


def reevaluate_due(
    repo: BillingRepository,
    relay: OutboxRelay,
    policy: Policy,
    now: int,
    *,
    marker_ttl_days: int,
) -> ReevaluateResult:
    log = get_logger(component="reevaluate")
    due = repo.due_for_review(now)
    changed = 0
    for customer_id in due:
        record = repo.get_record(customer_id)
        # A pure pre-check, so customers whose deadline already passed are not rewritten.
        if record is None or statemachine.reevaluate(record, now, policy).kind == "noop":
            continue

        def decide(current: BillingRecord) -> Decision:
            return statemachine.reevaluate(current, now, policy)

        op = Operation(
            op_id=f"reevaluate-{customer_id}-v{record.version}",
            op_type="ops.reevaluate",
            customer_id=customer_id,
            at=now,
            source="reevaluate",
        )
        result = repo.apply(op, decide, marker_ttl_days=marker_ttl_days)
        relay.relay_customer(customer_id, result.pending)
        if not result.duplicate and result.decision and result.decision.entitlements_changed:
            changed += 1
            log.info(
                "customer_reevaluated",
                customer_id=customer_id,
                to_status=result.decision.record.status,
                access=result.decision.record.access.value,
                version=result.decision.record.version,
            )
    log.info("reevaluate_run", checked=len(due), changed=changed)
    return ReevaluateResult(checked=len(due), changed=changed)
