"""Our Stripe webhook endpoint as code: URL, enabled_events and the pinned api_version.

What Stripe sends us is decided by the endpoint's configuration, not by this repository,
unless this sync makes them equal:
- `url`: the webhook function's URL (configuration: `terraform output -raw webhook_url`).
- `enabled_events`: exactly `statemachine.HANDLED_EVENT_TYPES`, the types the domain
  handles. An extra type costs a delivery we ignore; a missing one is an event we never see.
- `api_version`: the version the code pins (the gateway's STRIPE_API_VERSION, equal to the
  SDK's). It decides every payload's shape. Stripe sets it only when an endpoint is created
  (WebhookEndpointUpdateParams has no api_version), so a drifted version cannot be fixed by
  an update: the plan reports it and says a new endpoint must be created (the steps are in
  runbooks/stripe-configuration.md); it never writes a version it cannot write.

Drift reported as well: more than one endpoint pointing at our URL (each delivers every
event, signed with its own secret) and a disabled endpoint. A plan with nothing to change
performs reads only, so a second run writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from functions.errors import ConfigError
from functions.ports import StripeGateway
from statemachine import HANDLED_EVENT_TYPES

if TYPE_CHECKING:
    from stripe.params import WebhookEndpointCreateParams, WebhookEndpointUpdateParams

EndpointAction = Literal["create", "update", "no_change"]
# The Secret Manager secret the webhook function reads its signing secrets from.
SECRET_NAME = "stripe-webhook-secret"  # noqa: S105 (a name, not a secret)
DESCRIPTION = "Dataface billing webhook (managed by billing-ops stripe endpoint sync)"
MANAGED_METADATA = {"dataface_managed": "webhook_endpoint"}


def desired_events() -> list[str]:
    """The types we ask Stripe for: derived from the domain, never a second list."""
    return sorted(HANDLED_EVENT_TYPES)


@dataclass(frozen=True)
class EndpointPlan:
    action: EndpointAction
    url: str
    api_version: str
    endpoint_id: str | None = None
    # What would be written (a create's whole object, an update's changed fields).
    fields: dict[str, Any] = field(default_factory=dict)
    missing_events: tuple[str, ...] = ()
    extra_events: tuple[str, ...] = ()
    # The endpoint's version when it differs from the pin: needs a new endpoint.
    stale_api_version: str | None = None
    # Other enabled endpoints whose URL is ours (each delivers every event again).
    duplicates: tuple[str, ...] = ()
    # The endpoint a replacement is created beside (to disable once its secret is rolled in).
    replaces: str | None = None

    @property
    def is_write(self) -> bool:
        return self.action != "no_change"

    @property
    def needs_new_endpoint(self) -> bool:
        return self.stale_api_version is not None

    @property
    def unfixable(self) -> bool:
        """Drift an update cannot repair: it needs an operator (runbook steps)."""
        return self.needs_new_endpoint or bool(self.duplicates)

    def drift(self) -> list[str]:
        """One line per difference between Stripe and the code, for people."""
        lines = [f"missing event type {t}" for t in self.missing_events]
        lines += [f"extra event type {t}" for t in self.extra_events]
        if self.stale_api_version is not None:
            lines.append(
                f"api_version is {self.stale_api_version}, the code pins {self.api_version}; "
                "Stripe cannot change it on an existing endpoint: create a new endpoint "
                "(runbooks/stripe-configuration.md)"
            )
        lines += [f"second endpoint {d} points at {self.url}" for d in self.duplicates]
        if self.replaces is not None:
            lines.append(f"replaces {self.replaces}: disable it once the new secret is in use")
        if self.fields.get("disabled") is False:
            lines.append("endpoint is disabled")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "url": self.url,
            "api_version": self.api_version,
            "endpoint_id": self.endpoint_id,
            "fields": self.fields,
            "missing_events": list(self.missing_events),
            "extra_events": list(self.extra_events),
            "stale_api_version": self.stale_api_version,
            "duplicates": list(self.duplicates),
            "needs_new_endpoint": self.needs_new_endpoint,
            "replaces": self.replaces,
            "drift": self.drift(),
        }


def _pick(ours: Sequence[dict[str, Any]], api_version: str) -> dict[str, Any]:
    # Prefer an endpoint already on the pinned version, then the oldest (the one whose
    # secret is most likely the one in Secret Manager).
    return min(
        ours,
        key=lambda e: (
            e.get("api_version") != api_version,
            e.get("status") == "disabled",
            e.get("created", 0),
            e["id"],
        ),
    )


def plan_endpoint(gateway: StripeGateway, url: str, api_version: str) -> EndpointPlan:
    """Reads Stripe's endpoints and returns what would make ours match the code."""
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"webhook URL must be absolute (https://...), got {url!r}")
    ours = [e for e in gateway.list_webhook_endpoints() if e.get("url") == url]
    events = desired_events()
    if not ours:
        create = {"url": url, "enabled_events": events, "api_version": api_version}
        return EndpointPlan("create", url, api_version, fields=create)
    endpoint = _pick(ours, api_version)
    have = set(endpoint.get("enabled_events") or [])
    missing = tuple(sorted(set(events) - have))
    extra = tuple(sorted(have - set(events)))
    update: dict[str, Any] = {}
    if missing or extra:
        update["enabled_events"] = events
    if endpoint.get("status") == "disabled":
        update["disabled"] = False
    version = endpoint.get("api_version")
    return EndpointPlan(
        "update" if update else "no_change",
        url,
        api_version,
        endpoint_id=endpoint["id"],
        fields=update,
        missing_events=missing,
        extra_events=extra,
        stale_api_version=None if version == api_version else _shown(version),
        duplicates=tuple(
            sorted(
                e["id"] for e in ours if e["id"] != endpoint["id"] and e.get("status") != "disabled"
            )
        ),
    )


def _shown(version: object) -> str:
    # null: the endpoint follows the account's default version, whatever it becomes.
    return "the account default (none pinned)" if version is None else str(version)


def replacement(plan: EndpointPlan) -> EndpointPlan:
    """A new endpoint on the pinned version beside one Stripe cannot move to it; both
    deliver (same event ids: the subscriber applies each event once) until the old one is
    disabled after the new signing secret is in Secret Manager."""
    fields = {"url": plan.url, "enabled_events": desired_events(), "api_version": plan.api_version}
    return EndpointPlan(
        "create", plan.url, plan.api_version, fields=fields, replaces=plan.endpoint_id
    )


def _create_params(plan: EndpointPlan) -> WebhookEndpointCreateParams:
    # The event list and version are data checked at run time against the SDK's Literals
    # (tests/unit/test_stripe_params.py); the keys are checked by mypy here.
    return {
        "url": plan.url,
        "enabled_events": cast(Any, plan.fields["enabled_events"]),
        "api_version": cast(Any, plan.api_version),
        "description": DESCRIPTION,
        "metadata": MANAGED_METADATA,
    }


def _update_params(plan: EndpointPlan) -> WebhookEndpointUpdateParams:
    params: WebhookEndpointUpdateParams = {}
    if "enabled_events" in plan.fields:
        params["enabled_events"] = cast(Any, plan.fields["enabled_events"])
    if "disabled" in plan.fields:
        params["disabled"] = bool(plan.fields["disabled"])
    return params


def apply_endpoint(plan: EndpointPlan, gateway: StripeGateway) -> dict[str, Any] | None:
    """Writes the plan; returns Stripe's endpoint (a create's carries `secret`, once)."""
    if plan.action == "create":
        # Per run, not derived: the SDK's retries of this call replay it, while a run after
        # someone deleted the endpoint must create a new one, not replay the deleted one.
        return gateway.create_webhook_endpoint(
            _create_params(plan), idempotency_key=f"webhook-endpoint-{uuid.uuid4().hex}"
        )
    if plan.action == "update":
        assert plan.endpoint_id is not None
        return gateway.update_webhook_endpoint(plan.endpoint_id, _update_params(plan))
    return None
