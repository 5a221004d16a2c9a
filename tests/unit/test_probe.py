"""The probe's own logic: what it posts, how it alternates, where it reports a failure."""

from __future__ import annotations

import json
from collections.abc import Mapping

from functions.services.probe import PLANS, Probe, ProbeState
from functions.stripe_signature import sign
from schemas.stripe import StripeEvent, Subscription
from statemachine.synthetic import PROBE_CUSTOMER_ID

NOW = 1_790_000_000.0


class Poster:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posted: list[tuple[bytes, Mapping[str, str]]] = []

    def post(self, body: bytes, headers: Mapping[str, str]) -> int:
        self.posted.append((body, headers))
        return self.status


class Inbox:
    def __init__(self, arrives: bool = True) -> None:
        self.arrives = arrives
        self.asked: list[str] = []

    def wait_for(self, causing_event_id: str, timeout: float) -> Mapping[str, str] | None:
        self.asked.append(causing_event_id)
        return {"synthetic": "true", "causing_event_id": causing_event_id} if self.arrives else None


def probe(poster: Poster, inbox: Inbox, state: ProbeState, clock: list[float]) -> Probe:
    return Probe(poster, inbox, lambda: state, ["whsec_x"], clock=lambda: clock.pop(0))


def test_first_run_creates_then_runs_switch_plan_and_are_signed_like_stripe() -> None:
    poster, inbox = Poster(), Inbox()
    result = probe(poster, inbox, ProbeState(None, False), [NOW, NOW + 0.25]).run()
    assert result.ok and result.latency_ms == 250.0 and inbox.asked == [result.event_id]
    body, headers = poster.posted[0]
    event = StripeEvent.model_validate_json(body)
    assert (event.type, event.created, event.id) == (
        "customer.subscription.created",
        int(NOW),
        result.event_id,
    )
    subscription = Subscription.model_validate(json.loads(body)["data"]["object"])
    assert subscription.customer == PROBE_CUSTOMER_ID
    assert subscription.items.data[0].price.lookup_key == PLANS[0]
    assert headers["Stripe-Signature"] == sign(body, ["whsec_x"], int(NOW))

    again = Poster()
    probe(again, Inbox(), ProbeState(PLANS[0], True, int(NOW)), [NOW, NOW + 1]).run()
    event = json.loads(again.posted[0][0])
    assert event["type"] == "customer.subscription.updated"
    assert event["data"]["object"]["items"]["data"][0]["price"]["lookup_key"] == PLANS[1]
    # Same second as the last probe: still newer than the watermark.
    assert event["created"] == int(NOW) + 1


def test_failures_name_the_stage() -> None:
    rejected = probe(Poster(status=400), Inbox(), ProbeState(None, False), [NOW]).run()
    assert (rejected.ok, rejected.stage, rejected.detail) == (
        False,
        "webhook",
        "webhook answered 400",
    )
    lost = probe(Poster(), Inbox(arrives=False), ProbeState(None, False), [NOW]).run()
    assert (lost.ok, lost.stage) == (False, "delivery") and lost.latency_ms is None
