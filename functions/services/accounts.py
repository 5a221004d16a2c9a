"""Account views and the manual override: what on-call reads and the one escape hatch.

An override is a domain input like any other: it goes through `Applier.apply` (marker +
record + history + outbox in one transaction), so it is visible in `account show`, in the
customer's history, and downstream as an entitlement-changed message, and an expired
override is dropped by the domain the same way. The operator audit records who and why.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import statemachine
from functions.errors import RelayDeferred, TransientError
from functions.ports import AuditLog, BillingRepository, Operation
from functions.services.apply import Applied, Applier
from functions.services.audit import new_record
from schemas.documents import AuditRecord, BillingRecord, HistoryEntry, Override
from schemas.entitlements import AccessLevel
from statemachine.decision import Decision, Policy

# Operator ids live next to Stripe event ids in processed_events; the prefix keeps them apart.
OPS_PREFIX = "ops_"
# Overrides are an escape hatch, not a plan: they must run out and be looked at again.
MAX_OVERRIDE_SECONDS = 90 * 86_400


class AccountNotFound(LookupError):
    """Neither a known customer id nor a linked account id."""


@dataclass(frozen=True)
class OverrideResult:
    customer_id: str
    decision: Decision
    before: BillingRecord
    applied: bool  # False on dry run
    published: int = 0
    relay_error: str | None = None
    audit: AuditRecord | None = None


def resolve_customer(repo: BillingRepository, ref: str) -> str:
    """A Stripe customer id (cus_...) or one of our account ids -> the customer id."""
    if repo.get_record(ref) is not None:
        return ref
    customer = repo.customer_for_account(ref)
    if customer is None:
        raise AccountNotFound(f"{ref}: no billing record for this customer or account id")
    return customer


def diff_records(before: BillingRecord, after: BillingRecord) -> dict[str, tuple[Any, Any]]:
    """Operator-facing fields that differ, as (before, after)."""
    keys = (
        "status",
        "access",
        "subscription_id",
        "current_period_end",
        "cancel_at_period_end",
        "cancel_at",
        "trial_end",
        "payment_failed_at",
        "version",
    )
    changes: dict[str, tuple[Any, Any]] = {}
    for key in keys:
        old, new = getattr(before, key), getattr(after, key)
        if old != new:
            changes[key] = (_plain(old), _plain(new))
    old_plan = before.entitlements.plan if before.entitlements else None
    new_plan = after.entitlements.plan if after.entitlements else None
    if old_plan != new_plan:
        changes["plan"] = (old_plan, new_plan)
    old_items = sorted((i.price_id, i.quantity) for i in before.items)
    new_items = sorted((i.price_id, i.quantity) for i in after.items)
    if old_items != new_items:
        changes["items"] = (old_items, new_items)
    if (before.override is None) != (after.override is None) or before.override != after.override:
        changes["override"] = (_plain(before.override), _plain(after.override))
    if before.watermark and after.watermark and after.watermark.created < before.watermark.created:
        # Reconcile brought back a watermark an implausible event had pushed into the future.
        changes["watermark_created"] = (before.watermark.created, after.watermark.created)
    if len(before.anomalies) != len(after.anomalies):
        changes["anomalies"] = (len(before.anomalies), len(after.anomalies))
    return changes


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, AccessLevel):
        return value.value
    return value


def override_active(record: BillingRecord, now: float) -> bool:
    return bool(record.override and record.override.expires_at > now)


class AccountService:
    def __init__(
        self,
        applier: Applier,
        audit: AuditLog,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._applier = applier
        self._repo = applier.repo
        self._audit = audit
        self._policy = policy
        self._clock = clock

    def customer_id(self, ref: str) -> str:
        """A customer id or a linked account id -> the customer id; AccountNotFound."""
        return resolve_customer(self._repo, ref)

    def record(self, ref: str) -> BillingRecord:
        customer = resolve_customer(self._repo, ref)
        record = self._repo.get_record(customer)
        if record is None:  # linked account whose customer record is gone
            raise AccountNotFound(f"{ref}: linked to {customer}, which has no billing record")
        return record

    def history(self, customer_id: str, limit: int = 50) -> list[HistoryEntry]:
        return self._repo.history(customer_id, limit)

    def operator_actions(self, customer_id: str, limit: int = 50) -> list[AuditRecord]:
        return self._audit.list(target=customer_id, limit=limit)

    def pending_outbox(self, customer_id: str) -> int:
        return len(self._repo.pending_outbox(customer_id))

    def set_override(
        self,
        ref: str,
        *,
        access: AccessLevel | None,
        reason: str,
        actor: str,
        expires_at: int | None = None,
        dry_run: bool = False,
    ) -> OverrideResult:
        """Grant/restrict access (`access` set) or remove the override (`access` None)."""
        before = self.record(ref)
        now = int(self._clock())
        override = None
        if access is not None:
            if expires_at is None or expires_at <= now:
                raise ValueError("an override needs an expiry in the future")
            if expires_at - now > MAX_OVERRIDE_SECONDS:
                raise ValueError(f"an override lasts at most {MAX_OVERRIDE_SECONDS // 86_400}d")
            override = Override(
                access=access, reason=reason, actor=actor, expires_at=expires_at, created_at=now
            )
        action = "override.set" if override else "override.clear"

        def decide(record: BillingRecord) -> Decision:
            return statemachine.set_override(record, override, now, self._policy)

        if dry_run:
            return OverrideResult(before.customer_id, decide(before), before, applied=False)
        op = Operation(
            op_id=f"{OPS_PREFIX}override_{uuid.uuid4().hex}",
            op_type=f"ops.{action}",
            customer_id=before.customer_id,
            at=now,
            source="override",
        )
        relay_error = None
        try:
            applied = self._applier.apply(op, decide)
        except RelayDeferred as exc:
            applied, relay_error = cast(Applied, exc.committed), str(exc)
        result = applied.result
        if result.decision is None:  # a fresh uuid cannot be a duplicate
            raise TransientError(f"override {op.op_id} was not applied")
        audit = self._audit.write(
            new_record(
                actor,
                action,
                before.customer_id,
                reason,
                op_id=op.op_id,
                access=access.value if access else None,
                expires_at=expires_at,
                decision=result.decision.kind,
                version=result.decision.record.version,
            )
        )
        return OverrideResult(
            before.customer_id,
            result.decision,
            before,
            applied=True,
            published=applied.published,
            relay_error=relay_error,
            audit=audit,
        )
