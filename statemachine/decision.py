"""The domain's output type and its policy input. Pure data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.catalog import Catalog
from schemas.documents import Anomaly, BillingRecord, DecisionKind
from statemachine.catalog import CATALOG


@dataclass(frozen=True)
class Policy:
    grace_period_days: int = 7
    catalog: Catalog = field(default=CATALOG)

    @property
    def grace_seconds(self) -> int:
        return self.grace_period_days * 86_400


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: str
    dest: str


@dataclass(frozen=True)
class Decision:
    """What one input does to one customer's record.

    `record` is always the record to store: for duplicate/ignored it is the input record
    unchanged. When `entitlements_changed` is true the domain has already bumped
    `record.version` by one, and the caller must publish exactly that version.
    """

    kind: DecisionKind
    record: BillingRecord
    reason: str
    transition: Transition | None = None
    entitlements_changed: bool = False
    anomaly: Anomaly | None = None
