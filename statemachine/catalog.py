"""Dataface's pricing, encoded once (figures from the launch pricing research).

Prices the research gives are kept exactly. Limits it does not give are our documented
choices: Starter 5 tables (the research says "about 4-6"), Team 25, Business 100;
seats 3/10/25 included; alert channels count destinations (email only = 1).
"""

from __future__ import annotations

from schemas.catalog import AddOn, Catalog, Plan
from schemas.entitlements import Limits

CATALOG = Catalog(
    currency="usd",
    trial_days=30,
    plans=(
        Plan(
            id="starter",
            name="Starter",
            monthly_amount_cents=14900,
            lookup_key="dataface_starter_monthly",
            rank=1,
            features=("freshness_monitoring", "volume_monitoring", "email_alerts"),
            limits=Limits(
                tables=5, custom_rules=0, seats=3, alert_channels=1, api_requests_per_day=0
            ),
        ),
        Plan(
            id="team",
            name="Team",
            monthly_amount_cents=19900,
            lookup_key="dataface_team_monthly",
            rank=2,
            features=(
                "freshness_monitoring",
                "volume_monitoring",
                "email_alerts",
                "slack_alerts",
            ),
            limits=Limits(
                tables=25, custom_rules=0, seats=10, alert_channels=3, api_requests_per_day=0
            ),
        ),
        Plan(
            id="business",
            name="Business",
            monthly_amount_cents=29900,
            lookup_key="dataface_business_monthly",
            rank=3,
            features=(
                "freshness_monitoring",
                "volume_monitoring",
                "email_alerts",
                "slack_alerts",
                "pagerduty_alerts",
                "team_governance",
                "api_access",
            ),
            limits=Limits(
                tables=100,
                custom_rules=0,
                seats=25,
                alert_channels=10,
                api_requests_per_day=10_000,
            ),
        ),
    ),
    add_ons=(
        AddOn(
            id="custom_rules",
            name="Custom data-quality rules",
            monthly_amount_cents=9900,
            lookup_key="dataface_addon_custom_rules_monthly",
            features=("custom_rules",),
            extra_limits={"custom_rules": 50},
        ),
        AddOn(
            id="schema_change_detection",
            name="Schema-change detection",
            monthly_amount_cents=4900,
            lookup_key="dataface_addon_schema_change_monthly",
            features=("schema_change_detection",),
        ),
        AddOn(
            id="lineage",
            name="Lineage tracking",
            monthly_amount_cents=9900,
            lookup_key="dataface_addon_lineage_monthly",
            features=("lineage_tracking",),
        ),
        AddOn(
            id="alert_history",
            name="Historical alert analysis",
            monthly_amount_cents=14900,
            lookup_key="dataface_addon_alert_history_monthly",
            features=("historical_alert_analysis",),
        ),
        AddOn(
            id="quota_plus",
            name="Higher API and rule quota",
            monthly_amount_cents=9900,
            lookup_key="dataface_addon_quota_plus_monthly",
            extra_limits={"custom_rules": 200, "api_requests_per_day": 50_000},
        ),
        AddOn(
            id="extra_seat",
            name="Extra team seat",
            monthly_amount_cents=4900,
            lookup_key="dataface_addon_seat_monthly",
            extra_limits={"seats": 1},
            per_unit=True,
        ),
    ),
)
