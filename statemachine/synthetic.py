"""The reserved synthetic probe customer: a customer who is not a customer.

The probe (functions/services/probe.py) drives this customer through the live pipeline
every few minutes. Its id is longer than any id Stripe mints for customers (`cus_` and 14
characters), so it can never be a real one. Everything that counts or compares real
customers skips it: reconcile (Stripe does not know it), the read API's listing, exports
and operator counts; its entitlement-changed messages carry `synthetic=true`.
"""

from __future__ import annotations

from typing import Final

from schemas.entitlements import SYNTHETIC_ATTRIBUTE

__all__ = ["PROBE_CUSTOMER_ID", "PROBE_SUBSCRIPTION_ID", "SYNTHETIC_ATTRIBUTE", "is_synthetic"]

PROBE_CUSTOMER_ID: Final = "cus_0DatafaceSyntheticProbe"
PROBE_SUBSCRIPTION_ID: Final = "sub_0DatafaceSyntheticProbe"


def is_synthetic(customer_id: str | None) -> bool:
    return customer_id == PROBE_CUSTOMER_ID
