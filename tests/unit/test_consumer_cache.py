"""The consumer library's cache keeps the contract's rule: highest version per customer."""

from __future__ import annotations

import json
import threading

from functions.consumer import Applied, EntitlementsCache
from schemas.entitlements import (
    AccessLevel,
    AccountMessage,
    CurrentEntitlements,
    EntitlementChanged,
    Entitlements,
    Limits,
)

TEAM = Limits(tables=25, custom_rules=0, seats=10, alert_channels=3, api_requests_per_day=0)
NONE = Limits(tables=0, custom_rules=0, seats=0, alert_channels=0, api_requests_per_day=0)
FEATURES = ("freshness_monitoring", "slack_alerts")


def message(
    version: int,
    *,
    customer: str = "cus_1",
    account: str | None = "acct_1",
    access: AccessLevel = AccessLevel.FULL,
    features: tuple[str, ...] = FEATURES,
    limits: Limits = TEAM,
) -> EntitlementChanged:
    return EntitlementChanged(
        customer_id=customer,
        account_id=account,
        version=version,
        status="active" if access is AccessLevel.FULL else "canceled",
        access=access,
        entitlements=Entitlements(plan="team", features=features, limits=limits),
        message=AccountMessage(code="active", text="Your subscription is active."),
        causing_event_id=f"evt_{version}",
        effective_at=1_700_000_000 + version,
        published_at=1_700_000_000 + version,
        trace_id="a" * 32,
    )


def wire(state: EntitlementChanged, **attributes: str) -> tuple[bytes, dict[str, str]]:
    return state.model_dump_json().encode(), {"customer_id": state.customer_id, **attributes}


def test_can_and_limit_follow_the_highest_version() -> None:
    cache = EntitlementsCache()
    assert cache.apply_message(*wire(message(1))) is Applied.APPLIED
    assert cache.can("acct_1", "slack_alerts") and cache.limit("acct_1", "seats") == 10
    ended = message(2, access=AccessLevel.NONE, features=(), limits=NONE)
    assert cache.apply_message(*wire(ended)) is Applied.APPLIED
    assert not cache.can("acct_1", "slack_alerts") and cache.limit("acct_1", "seats") == 0
    # The older version redelivered after the newer one changes nothing.
    assert cache.apply_message(*wire(message(1))) is Applied.STALE
    assert not cache.can("acct_1", "slack_alerts")


def test_unknown_accounts_features_and_limits_are_denied() -> None:
    cache = EntitlementsCache()
    cache.apply(message(1))
    assert not cache.can("acct_other", "slack_alerts") and cache.limit("acct_other", "seats") == 0
    assert not cache.can("acct_1", "pagerduty_alerts")
    assert cache.limit("acct_1", "warehouses") == 0


def test_restricted_access_grants_read_only_and_nothing_else() -> None:
    cache = EntitlementsCache()
    cache.apply(message(1, access=AccessLevel.RESTRICTED, features=("read_only",)))
    assert cache.can("acct_1", "read_only") and not cache.can("acct_1", "slack_alerts")


def test_a_snapshot_and_the_stream_merge_by_version() -> None:
    cache = EntitlementsCache()
    snapshot = CurrentEntitlements(
        **message(4).model_dump(
            exclude={"causing_event_id", "effective_at", "published_at", "trace_id"}
        ),
        updated_at=1_700_000_004,
    )
    assert cache.load([snapshot]) == 1
    assert cache.apply(message(3)) is Applied.STALE  # already in the snapshot
    assert cache.apply(message(5)) is Applied.APPLIED  # the next change, no gap
    assert cache.for_customer("cus_1").version == 5  # type: ignore[union-attr]


def test_a_gap_is_applied_and_reported() -> None:
    gaps: list[tuple[str, int, int]] = []
    cache = EntitlementsCache(on_gap=lambda *gap: gaps.append(gap))
    cache.apply(message(1))
    assert cache.apply(message(4)) is Applied.GAP
    assert cache.for_customer("cus_1").version == 4  # type: ignore[union-attr]
    assert gaps == [("cus_1", 1, 4)]


def test_the_account_is_reachable_once_the_link_is_announced() -> None:
    cache = EntitlementsCache()
    cache.apply(message(1, account=None))
    assert cache.state("acct_1") is None and cache.for_customer("cus_1") is not None
    cache.apply(message(2))
    assert cache.can("acct_1", "slack_alerts")


def test_synthetic_and_invalid_messages_are_not_applied() -> None:
    cache = EntitlementsCache()
    assert cache.apply_message(*wire(message(1), synthetic="true")) is Applied.SYNTHETIC
    assert cache.apply_message(b"{not json", {}) is Applied.INVALID
    assert cache.apply_message(json.dumps({"version": 2}).encode(), {}) is Applied.INVALID
    assert cache.customers() == 0


def test_an_added_field_does_not_break_the_reader() -> None:
    payload = json.loads(message(1).model_dump_json())
    payload["region"] = "eu"  # an additive v1 change
    payload["entitlements"]["limits"]["warehouses"] = 3
    assert EntitlementsCache().apply_message(json.dumps(payload).encode(), {}) is Applied.APPLIED


def test_concurrent_appliers_keep_the_highest_version() -> None:
    cache = EntitlementsCache()
    versions = list(range(1, 201))
    threads = [
        threading.Thread(target=lambda vs=versions[i::4]: [cache.apply(message(v)) for v in vs])
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.for_customer("cus_1").version == 200  # type: ignore[union-attr]
