"""The domain against the Stripe billing simulator: random stories, every event delivered
in order or shuffled with duplicates and late ones, re-evaluated on the job's ticks; each
customer must end as Stripe's objects and our grace policy say (tests/support/differential.py).

Bounded here (well under a minute); `make soak` runs 10,000 stories and more.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.stripe import StripeEvent
from statemachine.decision import Policy
from tests.support.differential import PureDomain, run, world

POLICY = Policy()
SHAPES = ("current", "2020-08-27", "pre_prices")
AFTER_RETRIES = ("cancel", "unpaid", "past_due")
# The one story kind whose events leave the governing subscription open to question.
AMBIGUOUS = {"second_subscription"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    shape=st.sampled_from(SHAPES),
    after_retries=st.sampled_from(AFTER_RETRIES),
)
def test_in_order_every_story_agrees_and_only_ambiguous_ones_raise_anomalies(
    seed: int, shape: str, after_retries: str
) -> None:
    w = world(seed, 15, shape=shape, after_retries=after_retries)
    domain = PureDomain(POLICY)
    report = run(w, domain, POLICY, shuffled=False, rng=random.Random(seed))
    assert report.disagreements == []
    assert report.instant_disagreements == []
    flagged = {
        r.story.kind
        for r in w.runs
        if (rec := domain.record(r.customer_id)) is not None and rec.anomaly_open_since
    }
    assert flagged <= AMBIGUOUS, f"seed {seed}: anomalies in unambiguous stories {flagged}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    shape=st.sampled_from(SHAPES),
    after_retries=st.sampled_from(AFTER_RETRIES),
)
def test_shuffled_duplicated_and_late_deliveries_agree_or_one_reconcile_makes_them(
    seed: int, shape: str, after_retries: str
) -> None:
    w = world(seed, 15, shape=shape, after_retries=after_retries)
    report = run(w, PureDomain(POLICY), POLICY, shuffled=True, rng=random.Random(seed))
    assert report.disagreements == []
    assert sum(report.stories.values()) == 15


class ForgetsCancellations(PureDomain):
    """A domain with a planted bug: it never hears that a subscription was deleted."""

    def deliver(self, event: dict[str, Any]) -> str:
        if StripeEvent.model_validate(event).type == "customer.subscription.deleted":
            return "ignored"
        return super().deliver(event)


class LongGrace(PureDomain):
    """A domain with a planted bug: 30 days of grace instead of the published 7."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(Policy(grace_period_days=30))


def test_the_oracle_catches_planted_bugs() -> None:
    found: dict[str, list[str]] = {"cancel": [], "grace": []}
    for seed in range(4):
        w = world(seed, 15, after_retries="past_due")
        rng = random.Random(seed)
        found["cancel"] += run(
            w, ForgetsCancellations(POLICY), POLICY, shuffled=False, rng=rng
        ).disagreements
        found["grace"] += run(
            w, LongGrace(POLICY), POLICY, shuffled=False, rng=rng
        ).instant_disagreements
    assert any("cancel_now" in d for d in found["cancel"]), found["cancel"]
    assert any("failure_exhausted" in d for d in found["grace"]), found["grace"]
