"""The local Stripe server's configuration resources: webhook endpoints and Billing Portal
configurations (list, retrieve, create, update), in Stripe's wire format.

Shapes are the fixtures' `webhook_endpoint` and `billing_portal.configuration` objects with
the request laid over them. As on Stripe:
- a webhook endpoint's `secret` (whsec_...) is in the create response only;
- `api_version` is accepted on create only: an update naming it is refused (400 unknown
  parameter), as Stripe's update endpoint has no such parameter;
- a parameter the endpoint does not take is refused, so a test cannot pass on a parameter
  Stripe would reject;
- a portal configuration update merges `features` sub-object by sub-object; lists are
  replaced; `subscription_update.products` is returned with Stripe's `adjustable_quantity`.
"""

from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.stripe_server import State

_ENDPOINT_CREATE = {"api_version", "connect", "description", "enabled_events", "expand"}
_ENDPOINT_CREATE |= {"metadata", "url"}
_ENDPOINT_UPDATE = {"description", "disabled", "enabled_events", "expand", "metadata", "url"}
_PORTAL_CREATE = {"business_profile", "default_return_url", "expand", "features"}
_PORTAL_CREATE |= {"login_page", "metadata", "name"}
_PORTAL_UPDATE = _PORTAL_CREATE | {"active"}


def _unknown(params: dict[str, Any], allowed: set[str]) -> None:
    from tests.support.stripe_server import StripeApiError

    for name in sorted(set(params) - allowed):
        raise StripeApiError(
            400, "invalid_request_error", f"Received unknown parameter: {name}", "parameter_unknown"
        )


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = [] if value == "" else copy.deepcopy(value)


def _portal_products(features: dict[str, Any]) -> None:
    update = features.get("subscription_update") or {}
    update["products"] = [
        {
            "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
            "prices": list(p.get("prices") or []),
            "product": p["product"],
        }
        for p in update.get("products") or []
    ]


class ConfigurationRoutes:
    """Mixed into StripeServer, whose own methods replace these declarations."""

    state: State

    def _id(self, prefix: str) -> str:
        raise NotImplementedError

    def _now(self) -> int:
        raise NotImplementedError

    def _obj(self, kind: str, obj_id: str, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], obj_id: str, kind: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _require(params: dict[str, Any], *names: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _page(objs: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- webhook endpoints --------------------------------------------------------------

    def _get_webhook_endpoints(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            return self._get(self.state.webhook_endpoints, rest[0], "webhook endpoint")
        return self._page(list(self.state.webhook_endpoints.values()), p, path)

    def _post_webhook_endpoints(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            _unknown(p, _ENDPOINT_UPDATE)
            obj: dict[str, Any] = self._get(
                self.state.webhook_endpoints, rest[0], "webhook endpoint"
            )
            for key in ("description", "enabled_events", "url"):
                if key in p:
                    obj[key] = p[key]
            if "metadata" in p:
                obj["metadata"] = {**obj.get("metadata", {}), **p["metadata"]}
            if "disabled" in p:
                obj["status"] = "disabled" if p["disabled"] else "enabled"
            return obj
        _unknown(p, _ENDPOINT_CREATE)
        self._require(p, "url", "enabled_events")
        obj = self._obj(
            "webhook_endpoint",
            self._id("we"),
            url=p["url"],
            enabled_events=list(p["enabled_events"]),
            api_version=p.get("api_version"),
            description=p.get("description"),
            metadata=p.get("metadata", {}),
            status="enabled",
            application=None,
        )
        self.state.webhook_endpoints[obj["id"]] = obj
        # The signing secret is shown once, in the create response, never stored on the object.
        return {**obj, "secret": f"whsec_{secrets.token_hex(16)}"}

    # -- billing portal configurations --------------------------------------------------

    def _get_portal_configurations(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            return self._get(self.state.portal_configurations, rest[0], "configuration")
        objs = list(self.state.portal_configurations.values())
        for flag in ("active", "is_default"):
            if flag in p:
                objs = [o for o in objs if o[flag] == (p[flag] in (True, "true"))]
        return self._page(objs, p, path)

    def _post_portal_configurations(
        self, rest: list[str], p: dict[str, Any], path: str
    ) -> dict[str, Any]:
        if rest:
            _unknown(p, _PORTAL_UPDATE)
            obj = self._get(self.state.portal_configurations, rest[0], "configuration")
        else:
            _unknown(p, _PORTAL_CREATE)
            self._require(p, "features")
            obj = self._obj(
                "billing_portal.configuration",
                self._id("bpc"),
                is_default=False,
                metadata={},
                application=None,
            )
            self.state.portal_configurations[obj["id"]] = obj
        patch = {k: v for k, v in p.items() if k != "expand"}
        metadata = patch.pop("metadata", None)
        _merge(obj, patch)
        if metadata:
            obj["metadata"] = {**(obj.get("metadata") or {}), **metadata}
        if "features" in p:
            _portal_products(obj["features"])
        obj["updated"] = self._now()
        return obj

    def seed_portal_configuration(self, **fields: Any) -> dict[str, Any]:
        """The account's default configuration, as the Dashboard leaves it (fixture values)."""
        obj = self._obj("billing_portal.configuration", self._id("bpc"), is_default=True)
        obj.update(fields)
        self.state.portal_configurations[obj["id"]] = obj
        return obj

    def seed_webhook_endpoint(self, **fields: Any) -> dict[str, Any]:
        obj = self._obj("webhook_endpoint", self._id("we"), status="enabled")
        obj.update(fields)
        self.state.webhook_endpoints[obj["id"]] = obj
        return obj
