"""The proration policy's classification and the request models (pure; Stripe calls are in
tests/integration/test_checkout.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.checkout import ChangeRequest
from statemachine.catalog import CATALOG
from statemachine.plan_change import PlanTarget, SubscriptionState, classify, line_items

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
    target = PlanTarget(plan=plan, add_ons=add_ons, seats=seats)
    assert classify(TEAM_LINEAGE_2, target, CATALOG) == expected


def test_subscription_without_a_plan_item_moves_up_to_any_plan() -> None:
    state = SubscriptionState(None, frozenset(), 0)
    target = PlanTarget(plan="starter")
    assert classify(state, target, CATALOG) == "upgrade"


def test_seats_become_the_per_unit_add_on_line() -> None:
    items = line_items(PlanTarget(plan="team", add_ons=("lineage",), seats=4), CATALOG)
    seat = CATALOG.seat_add_on()
    assert seat is not None and seat.id == "extra_seat"
    assert items == [
        (CATALOG.plan("team").lookup_key, 1),
        (CATALOG.add_on("lineage").lookup_key, 1),
        (seat.lookup_key, 4),
    ]


def test_request_checks_plan_and_add_ons_against_the_catalog() -> None:
    context = {"catalog": CATALOG}
    ok = ChangeRequest.model_validate(
        {"account_id": "a", "plan": "team", "add_ons": ["lineage", "alert_history"]},
        context=context,
    )
    assert ok.add_ons == ("alert_history", "lineage")
    for body in (
        {"account_id": "a", "plan": "gold"},
        {"account_id": "a", "plan": "team", "add_ons": ["extra_seat"]},
        {"account_id": "a", "plan": "team", "add_ons": ["lineage", "lineage"]},
    ):
        with pytest.raises(ValidationError):
            ChangeRequest.model_validate(body, context=context)


def test_request_validated_without_a_catalog_is_refused() -> None:
    with pytest.raises(ValidationError, match="without a catalog"):
        ChangeRequest.model_validate({"account_id": "a", "plan": "team"})
