"""The three HTTP functions our own services call: checkout, portal and plan change.

Thin: authenticate, validate, call functions/services/checkout.py, answer. Every request:
POST only (405), `Authorization: Bearer` token for one account (401, see
functions/entrypoints/auth.py), JSON body validated by schemas/checkout.py (400 not JSON,
422 invalid), body account_id equal to the token's subject (403). A rejected request makes
no Stripe call. What the service refuses maps to a status here (REFUSED_STATUS); Stripe
refusing answers 502, Stripe or Firestore unavailable 503 with Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import flask
from pydantic import ValidationError

from functions import composition
from functions.entrypoints.auth import AuthSettings, Unauthenticated, verify_bearer
from functions.errors import ConfigError, StripeRejected, StripeUnavailable, TransientError
from functions.log import get_logger
from functions.services.checkout import CheckoutService, Refused
from schemas.checkout import AccountRequest, ChangeRequest, CheckoutRequest, PortalRequest

REFUSED_STATUS = {
    "already_subscribed": 409,
    "no_subscription": 409,
    "unknown_account": 404,
    # The catalog is not synced to this Stripe account: an operator problem, not the caller's.
    "catalog_not_synced": 500,
}

_R = TypeVar("_R", bound=AccountRequest)


@dataclass(frozen=True)
class Deps:
    service: CheckoutService
    auth: AuthSettings


class _Answer(Exception):
    """A response decided before the action ran (bad method, token, body)."""

    def __init__(self, response: flask.Response) -> None:
        self.response = response


def _json(status: int, payload: dict[str, Any], **headers: str) -> flask.Response:
    return flask.Response(
        json.dumps(payload), status=status, mimetype="application/json", headers=headers
    )


def _error(status: int, error: str, message: str, **headers: str) -> flask.Response:
    return _json(status, {"error": error, "message": message}, **headers)


def _validated(request: flask.Request, model: type[_R], deps: Deps, log: Any) -> _R:
    try:
        token_account = verify_bearer(request.headers.get("Authorization"), deps.auth)
    except Unauthenticated as exc:
        log.warning("unauthenticated", reason=str(exc))
        raise _Answer(
            _error(
                401,
                "unauthenticated",
                str(exc),
                **{"WWW-Authenticate": 'Bearer realm="dataface-billing"'},
            )
        ) from exc
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Answer(_error(400, "bad_request", "body must be a JSON object"))
    try:
        parsed = model.model_validate(body, context={"catalog": deps.service.catalog})
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        payload = {"error": "invalid_request", "message": "invalid input", "errors": errors}
        raise _Answer(_json(422, payload)) from exc
    if parsed.account_id != token_account:
        log.warning("account_mismatch", account_id=token_account)
        raise _Answer(_error(403, "forbidden", "token is not valid for this account"))
    return parsed


def _serve(
    request: flask.Request,
    model: type[_R],
    action: Callable[[CheckoutService, _R], dict[str, Any]],
    deps: Deps | None,
    name: str,
) -> flask.Response:
    log = get_logger(function=name)
    if request.method != "POST":
        return _error(405, "method_not_allowed", "use POST", Allow="POST")
    try:
        deps = deps or composition.checkout_deps()
        parsed = _validated(request, model, deps, log)
    except ConfigError as exc:
        log.error("config_error", error=str(exc))
        return _error(500, "misconfigured", "service misconfigured")
    except _Answer as answer:
        return answer.response
    try:
        result = action(deps.service, parsed)
    except Refused as exc:
        status = REFUSED_STATUS[exc.code]
        log.info("request_refused", account_id=parsed.account_id, status=status)
        return _error(status, exc.code, str(exc))
    except StripeRejected as exc:
        log.error("stripe_rejected", account_id=parsed.account_id, code=exc.code)
        return _error(502, "stripe_rejected", "Stripe refused the request")
    except (StripeUnavailable, TransientError) as exc:
        log.warning("dependency_unavailable", account_id=parsed.account_id, error=str(exc))
        return _error(503, "unavailable", "try again shortly", **{"Retry-After": "5"})
    log.info("request_done", account_id=parsed.account_id, result=result.get("result"))
    return _json(200, result)


# -- entry points (wrapped by main.py) --------------------------------------------------


def create_checkout_session(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(
        request, CheckoutRequest, CheckoutService.checkout, deps, "create_checkout_session"
    )


def create_portal_session(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(request, PortalRequest, CheckoutService.portal, deps, "create_portal_session")


def change_subscription(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    return _serve(request, ChangeRequest, CheckoutService.change, deps, "change_subscription")
