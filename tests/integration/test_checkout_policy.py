"""The proration policy's classification (pure logic; the Stripe calls are in test_checkout)."""

from __future__ import annotations

import pytest

from functions.entrypoints.checkout import ChangeRequest, SubscriptionState, classify
from statemachine.catalog import CATALOG

TEAM_LINEAGE_2 = SubscriptionState("team", frozenset({"lineage"}), 2)


@pytest.mark.parametrize(
    ("plan", "add_ons", "seats", "expected"),
    [
        ("team", ("lineage",), 2, "none"),
        ("business", ("lineage",), 2, "upgrade"),  # higher rank
        ("business", (), 0, "upgrade"),  # higher rank wins even if add-ons/seats drop
        ("team", ("lineage", "alert_history"), 2, "upgrade"),  # only additions
        ("team", ("lineage",), 3, "upgrade"),  # more seats
        ("team", ("lineage", "quota_plus"), 5, "upgrade"),
        ("starter", ("lineage",), 2, "downgrade"),  # lower rank
        ("starter", ("lineage", "alert_history"), 9, "downgrade"),  # lower rank despite adds
        ("team", (), 2, "downgrade"),  # add-on removed
        ("team", ("lineage",), 1, "downgrade"),  # fewer seats
        ("team", ("alert_history",), 2, "downgrade"),  # swap counts as a reduction
    ],
)
def test_classify(plan: str, add_ons: tuple[str, ...], seats: int, expected: str) -> None:
    target = ChangeRequest(account_id="a", plan=plan, add_ons=add_ons, seats=seats)
    assert classify(TEAM_LINEAGE_2, target, CATALOG) == expected


def test_subscription_without_a_plan_item_moves_up_to_any_plan() -> None:
    state = SubscriptionState(None, frozenset(), 0)
    target = ChangeRequest(account_id="a", plan="starter")
    assert classify(state, target, CATALOG) == "upgrade"
