"""Scheduled re-evaluation: access that changes with time alone, with no Stripe event.

Grace after a failed payment runs out, an operator override expires, a cancelled
subscription reaches its period end. Stripe may send nothing at that moment, so a
scheduled job asks the domain again. Each customer goes through the same transactional
path as an event (marker, history, outbox); the operation id names the record version
it was planned against, so two overlapping runs apply it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import statemachine
from functions.log import get_logger
from functions.ports import Operation
from functions.services.apply import Applied, Applier
from functions.services.batch import per_customer
from schemas.documents import BillingRecord
from statemachine.decision import Decision, Policy


@dataclass(frozen=True)
class ReevaluateResult:
    checked: int
    changed: int
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def outage(self) -> bool:
        return bool(self.failed) and len(self.failed) == self.checked


def reevaluate_due(applier: Applier, policy: Policy, now: int) -> ReevaluateResult:
    log = get_logger(component="reevaluate")
    due = applier.repo.due_for_review(now)
    changed: list[str] = []

    def one(customer_id: str) -> Applied | None:
        record = applier.repo.get_record(customer_id)
        # A pure pre-check, so customers whose deadline already passed are not rewritten.
        if record is None or statemachine.reevaluate(record, now, policy).kind == "noop":
            return None

        def decide(current: BillingRecord) -> Decision:
            return statemachine.reevaluate(current, now, policy)

        op = Operation(
            op_id=f"reevaluate-{customer_id}-v{record.version}",
            op_type="ops.reevaluate",
            customer_id=customer_id,
            at=now,
            source="reevaluate",
        )
        return applier.apply(op, decide)

    def note(customer_id: str, applied: Applied | None) -> None:
        decision = applied.result.decision if applied else None
        if applied and not applied.result.duplicate and decision and decision.entitlements_changed:
            changed.append(customer_id)
            log.info(
                "customer_reevaluated",
                customer_id=customer_id,
                to_status=decision.record.status,
                access=decision.record.access.value,
                version=decision.record.version,
            )

    report = per_customer("reevaluate", due, one, on_result=note)
    result = ReevaluateResult(checked=len(due), changed=len(changed), failed=report.failed)
    log.info(
        "reevaluate_run", checked=result.checked, changed=result.changed, failed=len(report.failed)
    )
    return result
