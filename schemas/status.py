"""Stripe's subscription statuses: a leaf module, so the Stripe shapes and our contract
can both name them without importing each other."""

from __future__ import annotations

from typing import Literal

SubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
]
