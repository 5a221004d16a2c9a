"""A deterministic, seedable, in-process simulator of Stripe Billing: the oracle for our domain.

    sim = Simulator(seed=7, shape="current", settings=Settings(after_retries="unpaid"))
    cus = sim.create_customer("acct_1")
    sub = sim.subscribe(cus, "team", add_ons=("lineage",), seats=2, trial_days=30)
    sim.advance(40 * DAY)          # trial end, conversion, invoices, in time order
    sim.events                     # every envelope emitted, in order
    sim.subscriptions_of(cus)      # Stripe's current objects, in the chosen shape
    sim.load_into(stripe_server)   # the same Stripe behind tests/support/stripe_server.py

Modules: clock (time, ids), objects (state and settings), shapes (JSON per API version),
events (envelopes), core (invoices and payments), lifecycle (what time brings), billing
(the actions and queries), serve (into StripeServer), stories (random customer stories).
Each module's docstring names the Stripe documentation it follows.
"""

from tests.support.simulator.billing import START, Simulator
from tests.support.simulator.clock import DAY, HOUR, MINUTE
from tests.support.simulator.objects import Settings, Shape, SimulatorError
from tests.support.simulator.shapes import API_VERSIONS, CURRENT_API_VERSION
from tests.support.simulator.stories import (
    KINDS,
    Run,
    Story,
    StoryKind,
    play,
    random_stories,
    random_story,
    start,
)

__all__ = [
    "API_VERSIONS",
    "CURRENT_API_VERSION",
    "DAY",
    "HOUR",
    "KINDS",
    "MINUTE",
    "START",
    "Run",
    "Settings",
    "Shape",
    "Simulator",
    "SimulatorError",
    "Story",
    "StoryKind",
    "play",
    "random_stories",
    "random_story",
    "start",
]
