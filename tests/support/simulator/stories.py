"""Seeded random customer stories: plausible action sequences, each tagged with its kind.

`random_story(rng, i)` draws one story (kind, plan, timings) from `rng`; `start(sim,
story, at)` creates the story's customer and queues its steps on the simulator's clock,
so many customers' stories interleave on one timeline; `play` runs a batch to the end.
A step Stripe would refuse at that moment (say, resuming a subscription the retries
already canceled) is recorded in `Run.skipped`, never raised.

What each kind exercises (the timings assume monthly periods of 28-31 days):
  trial_converts       trial with a card, converts, renews once
  trial_no_card        trial without a card: paused or canceled at its end (some add a
                       card and resume)
  pay_and_renew        pays at signup, renews one to three times
  failure_recovery     the card starts declining, the renewal fails, a new card pays
                       (by a retry or by paying the open invoice) before retries run out
  failure_exhausted    the card declines through every retry: Settings.after_retries
  pause_resume         Pause endpoint then resume, or pause_collection
  upgrade              a higher plan now, with an immediate proration invoice
  downgrade            a lower plan at period end through a schedule (released later)
  seats_addons         one to three changes of add-ons and extra seats
  cancel_period_end    cancel_at_period_end, or cancel_at a date
  cancel_now           immediate cancellation
  resubscribe          cancels, then subscribes again to another plan
  second_subscription  a second live subscription for the same customer
  abandoned_signup     the first payment fails; incomplete_expired after 23 hours
  price_transfer       the plan's price moves to a new price (transfer_lookup_key); the
                       subscription stays on the old one, then changes seats
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, get_args

from tests.support.simulator.billing import Simulator
from tests.support.simulator.clock import DAY, HOUR, MINUTE
from tests.support.simulator.objects import (
    CollectionPause,
    MissingPaymentMethod,
    Proration,
    SimulatorError,
)

StoryKind = Literal[
    "trial_converts",
    "trial_no_card",
    "pay_and_renew",
    "failure_recovery",
    "failure_exhausted",
    "pause_resume",
    "upgrade",
    "downgrade",
    "seats_addons",
    "cancel_period_end",
    "cancel_now",
    "resubscribe",
    "second_subscription",
    "abandoned_signup",
    "price_transfer",
]
KINDS: tuple[StoryKind, ...] = get_args(StoryKind)
PLANS = ("starter", "team", "business")
ADD_ONS = ("custom_rules", "schema_change_detection", "lineage", "alert_history", "quota_plus")


# -- actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    plan: str
    add_ons: tuple[str, ...] = ()
    seats: int = 0
    trial_days: int = 0
    card: bool = True
    missing_payment_method: MissingPaymentMethod = "pause"


@dataclass(frozen=True)
class SetCard:
    ok: bool | None


@dataclass(frozen=True)
class PayOpenInvoices:
    pass


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class PauseCollection:
    behavior: CollectionPause
    resume_after: int | None = None


@dataclass(frozen=True)
class ChangeItems:
    plan: str | None = None
    add_ons: tuple[str, ...] | None = None
    seats: int | None = None
    proration_behavior: Proration = "always_invoice"


@dataclass(frozen=True)
class Downgrade:
    plan: str
    add_ons: tuple[str, ...] = ()
    seats: int = 0


@dataclass(frozen=True)
class CancelAtPeriodEnd:
    pass


@dataclass(frozen=True)
class CancelAt:
    after: int


@dataclass(frozen=True)
class CancelNow:
    pass


@dataclass(frozen=True)
class TransferPrice:
    plan: str
    increase: int


Action = (
    Subscribe
    | SetCard
    | PayOpenInvoices
    | Pause
    | Resume
    | PauseCollection
    | ChangeItems
    | Downgrade
    | CancelAtPeriodEnd
    | CancelAt
    | CancelNow
    | TransferPrice
)


@dataclass(frozen=True)
class Step:
    at: int  # seconds after the story starts
    action: Action


@dataclass(frozen=True)
class Story:
    kind: StoryKind
    customer_index: int
    account_id: str
    steps: tuple[Step, ...]
    duration: int  # seconds after the start by which everything the story shows happened


@dataclass
class Run:
    story: Story
    start: int
    customer_id: str
    subscription_ids: list[str] = field(default_factory=list)
    skipped: list[tuple[Step, str]] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.story.duration


def _apply(sim: Simulator, run: Run, action: Action) -> None:
    cus, sub = run.customer_id, run.subscription_ids[-1] if run.subscription_ids else ""
    if isinstance(action, Subscribe):
        run.subscription_ids.append(
            sim.subscribe(
                cus,
                action.plan,
                action.add_ons,
                action.seats,
                trial_days=action.trial_days,
                card=action.card,
                missing_payment_method=action.missing_payment_method,
            )
        )
    elif isinstance(action, SetCard):
        sim.set_card(cus, action.ok)
    elif isinstance(action, PayOpenInvoices):
        sim.pay_open_invoices(cus)
    elif isinstance(action, Pause):
        sim.pause(sub)
    elif isinstance(action, Resume):
        sim.resume(sub)
    elif isinstance(action, PauseCollection):
        until = sim.now + action.resume_after if action.resume_after else None
        sim.pause_collection(sub, action.behavior, until)
    elif isinstance(action, ChangeItems):
        sim.change_items(
            sub,
            plan=action.plan,
            add_ons=action.add_ons,
            seats=action.seats,
            proration_behavior=action.proration_behavior,
        )
    elif isinstance(action, Downgrade):
        sim.downgrade_at_period_end(sub, action.plan, action.add_ons, action.seats)
    elif isinstance(action, CancelAtPeriodEnd):
        sim.cancel_at_period_end(sub)
    elif isinstance(action, CancelAt):
        sim.cancel_at(sub, sim.now + action.after)
    elif isinstance(action, CancelNow):
        sim.cancel_now(sub)
    else:
        old = sim.world.prices[sim.price_id(sim.catalog.plan(action.plan).lookup_key)]
        sim.transfer_price(old.lookup_key or "", old.unit_amount + action.increase)


def start(sim: Simulator, story: Story, at: int | None = None) -> Run:
    """Create the story's customer at `at` (default now) and queue its steps."""
    when = sim.now if at is None else at
    run = Run(story, when, customer_id="")

    def begin() -> None:
        run.customer_id = sim.create_customer(story.account_id)

    def step(s: Step) -> None:
        try:
            _apply(sim, run, s.action)
        except SimulatorError as exc:
            run.skipped.append((s, str(exc)))

    sim.call_at(when, f"story {story.account_id}", begin)
    for s in story.steps:
        sim.call_at(when + s.at, f"{story.kind} {type(s.action).__name__}", partial(step, s))
    return run


def play(sim: Simulator, stories: list[Story], spacing: int = 7 * MINUTE) -> list[Run]:
    """Start the stories `spacing` apart from now and run until the last one is over."""
    runs = [start(sim, story, sim.now + i * spacing) for i, story in enumerate(stories)]
    sim.advance_to(max((r.end for r in runs), default=sim.now))
    return runs


# -- recipes ---------------------------------------------------------------------------


def _t(rng: random.Random, low_days: float, high_days: float) -> int:
    """A moment between the two day counts, not on a round hour."""
    return int(rng.uniform(low_days, high_days) * DAY) + rng.randrange(1, HOUR)


def _plan_and_extras(rng: random.Random) -> Subscribe:
    add_ons = tuple(sorted(rng.sample(ADD_ONS, rng.choice([0, 0, 1, 2]))))
    return Subscribe(rng.choice(PLANS), add_ons, rng.choice([0, 0, 2, 5]))


def _trial_converts(rng: random.Random) -> tuple[list[Step], int]:
    trial = rng.choice([7, 14, 30])
    sub = _plan_and_extras(rng)
    steps = [Step(0, Subscribe(sub.plan, sub.add_ons, sub.seats, trial_days=trial))]
    return steps, (trial + 35) * DAY


def _trial_no_card(rng: random.Random) -> tuple[list[Step], int]:
    trial = rng.choice([14, 30])
    behavior: MissingPaymentMethod = rng.choice(["pause", "cancel"])
    steps = [
        Step(
            0,
            Subscribe(
                rng.choice(PLANS), trial_days=trial, card=False, missing_payment_method=behavior
            ),
        )
    ]
    if behavior == "pause" and rng.random() < 0.5:
        later = trial * DAY + _t(rng, 1, 10)
        steps += [Step(later, SetCard(True)), Step(later + 5 * MINUTE, Resume())]
    return steps, (trial + 40) * DAY


def _pay_and_renew(rng: random.Random) -> tuple[list[Step], int]:
    return [Step(0, _plan_and_extras(rng))], _t(rng, 35, 100)


def _failure(rng: random.Random, recover: bool) -> tuple[list[Step], int]:
    steps = [Step(0, _plan_and_extras(rng)), Step(_t(rng, 5, 20), SetCard(False))]
    if not recover:
        return steps, 48 * DAY
    fixed = _t(rng, 32, 34)
    steps.append(Step(fixed, SetCard(True)))
    if rng.random() < 0.5:
        steps.append(Step(fixed + 2 * MINUTE, PayOpenInvoices()))
    return steps, 48 * DAY


def _pause_resume(rng: random.Random) -> tuple[list[Step], int]:
    paused = _t(rng, 5, 20)
    first = Step(0, _plan_and_extras(rng))
    if rng.random() < 0.3:
        behavior: CollectionPause = rng.choice(["void", "keep_as_draft", "mark_uncollectible"])
        return [first, Step(paused, PauseCollection(behavior, _t(rng, 20, 45)))], 75 * DAY
    resumed = paused + _t(rng, 3, 40)
    return [first, Step(paused, Pause()), Step(resumed, Resume())], resumed + 35 * DAY


def _upgrade(rng: random.Random) -> tuple[list[Step], int]:
    low = rng.choice(PLANS[:2])
    high = rng.choice([p for p in PLANS if PLANS.index(p) > PLANS.index(low)])
    return [Step(0, Subscribe(low)), Step(_t(rng, 3, 25), ChangeItems(plan=high))], 50 * DAY


def _downgrade(rng: random.Random) -> tuple[list[Step], int]:
    high = rng.choice(PLANS[1:])
    low = rng.choice([p for p in PLANS if PLANS.index(p) < PLANS.index(high)])
    return [Step(0, Subscribe(high)), Step(_t(rng, 3, 25), Downgrade(low))], 70 * DAY


def _seats_addons(rng: random.Random) -> tuple[list[Step], int]:
    steps, at = [Step(0, _plan_and_extras(rng))], 0
    for _ in range(rng.randint(1, 3)):
        at += _t(rng, 2, 12)
        add_ons = tuple(sorted(rng.sample(ADD_ONS, rng.randint(0, 2))))
        steps.append(Step(at, ChangeItems(add_ons=add_ons, seats=rng.choice([0, 1, 3, 8]))))
    return steps, at + 35 * DAY


def _cancel_period_end(rng: random.Random) -> tuple[list[Step], int]:
    when = _t(rng, 5, 25)
    action: Action = CancelAt(_t(rng, 10, 40)) if rng.random() < 0.3 else CancelAtPeriodEnd()
    return [Step(0, _plan_and_extras(rng)), Step(when, action)], when + 45 * DAY


def _cancel_now(rng: random.Random) -> tuple[list[Step], int]:
    return [Step(0, _plan_and_extras(rng)), Step(_t(rng, 1, 25), CancelNow())], 30 * DAY


def _resubscribe(rng: random.Random) -> tuple[list[Step], int]:
    first, second = rng.sample(PLANS, 2)
    cancel = _t(rng, 5, 20)
    again = cancel + _t(rng, 1, 5)
    steps = [Step(0, Subscribe(first)), Step(cancel, CancelNow()), Step(again, Subscribe(second))]
    return steps, again + 40 * DAY


def _second_subscription(rng: random.Random) -> tuple[list[Step], int]:
    first, second = rng.sample(PLANS, 2)
    return [Step(0, Subscribe(first)), Step(_t(rng, 3, 20), Subscribe(second))], 45 * DAY


def _abandoned_signup(rng: random.Random) -> tuple[list[Step], int]:
    return [Step(0, Subscribe(rng.choice(PLANS), card=False))], 2 * DAY


def _price_transfer(rng: random.Random) -> tuple[list[Step], int]:
    plan = rng.choice(PLANS)
    moved = _t(rng, 5, 20)
    steps = [
        Step(0, Subscribe(plan)),
        Step(moved, TransferPrice(plan, rng.choice([1_000, 2_000, 5_000]))),
        Step(moved + _t(rng, 1, 3), ChangeItems(seats=rng.choice([1, 2, 4]))),
    ]
    return steps, 45 * DAY


Recipe = Callable[[random.Random], tuple[list[Step], int]]
_RECIPES: dict[StoryKind, Recipe] = {
    "trial_converts": _trial_converts,
    "trial_no_card": _trial_no_card,
    "pay_and_renew": _pay_and_renew,
    "failure_recovery": lambda rng: _failure(rng, recover=True),
    "failure_exhausted": lambda rng: _failure(rng, recover=False),
    "pause_resume": _pause_resume,
    "upgrade": _upgrade,
    "downgrade": _downgrade,
    "seats_addons": _seats_addons,
    "cancel_period_end": _cancel_period_end,
    "cancel_now": _cancel_now,
    "resubscribe": _resubscribe,
    "second_subscription": _second_subscription,
    "abandoned_signup": _abandoned_signup,
    "price_transfer": _price_transfer,
}


def random_story(rng: random.Random, customer_index: int, kind: StoryKind | None = None) -> Story:
    """One customer's story; the kind is drawn from `rng` unless given."""
    chosen: StoryKind = kind if kind is not None else rng.choice(KINDS)
    steps, duration = _RECIPES[chosen](rng)
    return Story(
        kind=chosen,
        customer_index=customer_index,
        account_id=f"acct_sim{customer_index:06d}",
        steps=tuple(sorted(steps, key=lambda s: s.at)),
        duration=duration,
    )


def random_stories(rng: random.Random, count: int) -> list[Story]:
    """`count` stories cycling through every kind (each kind appears once `count` >= 15)."""
    return [random_story(rng, i, KINDS[i % len(KINDS)]) for i in range(count)]
