"""The current-entitlements read API, for the Dataface app and every downstream service.

    GET  /v1/entitlements/{account_id}
    GET  /v1/entitlements/by-customer/{customer_id}
    GET  /v1/entitlements?page_size=100&page_token=...     every customer, paged (cold start)
    POST /v1/entitlements:batchGet  {"account_ids": [...], "customer_ids": [...]}

Every request carries `Authorization: Bearer <token>` minted with the internal auth keys
for audience `dataface-entitlements` (functions/entrypoints/auth.py); in production only
our services' identities may invoke the function at all. A single read answers with an
`ETag` of the customer and version and `304` to a matching `If-None-Match`. Thin: route,
authenticate, validate, read through functions/services/entitlements_read.py, answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import flask
from pydantic import BaseModel, ValidationError

from functions import composition
from functions.entrypoints.auth import READ_AUDIENCE, AuthSettings, Unauthenticated, verify_bearer
from functions.errors import ConfigError, TransientError
from functions.log import get_logger
from functions.services.entitlements_read import EntitlementReader
from schemas.entitlements import CurrentEntitlements
from schemas.read_api import ID_PATTERN, BatchGetRequest

_ROUTES = (
    ("account", re.compile(rf"/v1/entitlements/(?P<id>{ID_PATTERN})")),
    ("customer", re.compile(rf"/v1/entitlements/by-customer/(?P<id>{ID_PATTERN})")),
    ("page", re.compile(r"/v1/entitlements/?")),
    ("batch", re.compile(r"/v1/entitlements:batchGet")),
)
_PAGE_TOKEN = re.compile(rf"^{ID_PATTERN}$")
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Deps:
    reader: EntitlementReader
    auth: AuthSettings
    max_batch: int


def _json(status: int, payload: Any, **headers: str) -> flask.Response:
    body = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return flask.Response(body, status=status, mimetype="application/json", headers=headers)


def _error(status: int, error: str, message: str, **extra: Any) -> flask.Response:
    return _json(status, {"error": error, "message": message, **extra})


def _route(path: str) -> tuple[str, str | None] | None:
    # Deployed behind a function URL the path may carry a prefix; match from /v1 on.
    tail = path[path.find("/v1/") :] if "/v1/" in path else path
    for name, pattern in _ROUTES:
        match = pattern.fullmatch(tail)
        if match:
            return name, match.groupdict().get("id")
    return None


def _etag(found: CurrentEntitlements) -> str:
    return f'"{found.customer_id}.{found.version}"'


def _not_modified(request: flask.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def _single(request: flask.Request, found: CurrentEntitlements | None, what: str) -> flask.Response:
    if found is None:
        return _error(404, "not_found", what)
    etag = _etag(found)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _not_modified(request, etag):
        return flask.Response(status=304, headers=headers)
    return _json(200, found, **headers)


def _page(request: flask.Request, deps: Deps) -> flask.Response:
    token = request.args.get("page_token") or None
    try:
        size = int(request.args.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        size = 0
    if not 1 <= size <= deps.max_batch:
        return _error(400, "bad_request", f"page_size must be 1..{deps.max_batch}")
    if token is not None and not _PAGE_TOKEN.fullmatch(token):
        return _error(400, "bad_request", "page_token is not one this API returned")
    return _json(200, deps.reader.page(token, size))


def _batch(request: flask.Request, deps: Deps) -> flask.Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "bad_request", "body must be a JSON object")
    try:
        parsed = BatchGetRequest.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
        ]
        return _error(422, "invalid_request", "invalid input", errors=errors)
    if len(parsed.account_ids) + len(parsed.customer_ids) > deps.max_batch:
        return _error(422, "invalid_request", f"at most {deps.max_batch} ids per request")
    return _json(200, deps.reader.batch(parsed.account_ids, parsed.customer_ids))


def _dispatch(request: flask.Request, deps: Deps, route: tuple[str, str | None]) -> flask.Response:
    name, ident = route
    if name == "account" and ident:
        found = deps.reader.by_account(ident)
        return _single(request, found, f"no billing record for Dataface account {ident}")
    if name == "customer" and ident:
        found = deps.reader.by_customer(ident)
        return _single(request, found, f"no billing record for Stripe customer {ident}")
    if name == "page":
        return _page(request, deps)
    return _batch(request, deps)


def handle(request: flask.Request, deps: Deps | None = None) -> flask.Response:
    log = get_logger(function="entitlements")
    route = _route(request.path)
    if route is None:
        return _error(404, "no_such_route", "see GET /v1/entitlements/{account_id}")
    method = "POST" if route[0] == "batch" else "GET"
    if request.method != method:
        return flask.Response(status=405, headers={"Allow": method})
    try:
        deps = deps or composition.read_api_deps()
        caller = verify_bearer(request.headers.get("Authorization"), deps.auth, READ_AUDIENCE)
        response = _dispatch(request, deps, route)
    except Unauthenticated as exc:
        log.warning("unauthenticated", reason=str(exc))
        return _error(401, "unauthenticated", str(exc))
    except ConfigError as exc:
        log.error("config_error", error=str(exc))
        return _error(500, "misconfigured", "service misconfigured")
    except TransientError as exc:
        log.warning("dependency_unavailable", error=str(exc))
        response = _error(503, "unavailable", "try again shortly")
        response.headers["Retry-After"] = "1"
        return response
    log.info("read", caller=caller, route=route[0], status=response.status_code)
    return response
