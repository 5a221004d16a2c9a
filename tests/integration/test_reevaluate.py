"""Time alone changes access: grace after a failed payment runs out with no Stripe event."""

from __future__ import annotations

from typing import Any

import pytest

from functions.adapters.firestore_repository import FirestoreRepository
from functions.services.reevaluate import reevaluate_due
from infra.local.scenarios import build
from schemas.entitlements import AccessLevel
from statemachine.decision import Policy
from tests.integration.subscriber_support import (
    entitlements,
    make_subscriber,
    message,
    new_project,
    versions_after_dedupe,
)

pytestmark = pytest.mark.emulator


def test_grace_expiry_restricts_access_once(emulators: Any) -> None:
    project, settings = new_project()
    subscriber = make_subscriber(project, settings)
    repo = FirestoreRepository(project)
    scenario = build("failure_unpaid_canceled", customer_id="cus_grace", account_id="acct_g")
    for event in scenario.events:
        subscriber.handle(message(event))
        record = repo.get_record("cus_grace")
        if record and record.status == "past_due" and record.grace_until:
            break
    assert record is not None and record.access == AccessLevel.GRACE
    grace_until = record.grace_until
    assert grace_until is not None

    before = reevaluate_due(subscriber.applier, Policy(), grace_until - 60)
    assert before.changed == 0

    after = reevaluate_due(subscriber.applier, Policy(), grace_until + 1)
    again = reevaluate_due(subscriber.applier, Policy(), grace_until + 2)

    assert (after.changed, again.changed) == (1, 0)
    degraded = repo.get_record("cus_grace")
    assert degraded is not None and degraded.access == AccessLevel.RESTRICTED
    assert degraded.version == record.version + 1
    assert repo.history("cus_grace")[0].source == "reevaluate"
    published = versions_after_dedupe(entitlements(project))["cus_grace"]
    assert published == list(range(1, degraded.version + 1))
