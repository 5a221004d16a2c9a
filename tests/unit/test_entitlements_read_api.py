"""The read API's routes, auth, caching headers and errors, over a fake repository."""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest

from functions.entrypoints import entitlements as api
from functions.entrypoints.auth import AUDIENCE, READ_AUDIENCE, AuthSettings, issue_token
from functions.services.entitlements_read import EntitlementReader
from schemas.documents import AccountLink, BillingRecord
from schemas.entitlements import AccessLevel, CurrentEntitlements, Entitlements, Limits
from tests.support.fake_repository import FakeRepository

SECRET = "r" * 40
LIMITS = Limits(tables=25, custom_rules=0, seats=10, alert_channels=3, api_requests_per_day=0)
APP = flask.Flask(__name__)


def record(customer: str, account: str | None, version: int = 3) -> BillingRecord:
    return BillingRecord(
        customer_id=customer,
        account_id=account,
        status="active",
        version=version,
        access=AccessLevel.FULL,
        entitlements=Entitlements(plan="team", features=("slack_alerts",), limits=LIMITS),
        updated_at=1_700_000_000,
    )


@pytest.fixture
def deps() -> api.Deps:
    repo = FakeRepository()
    for n in range(1, 6):
        repo.records[f"cus_{n}"] = record(f"cus_{n}", f"acct_{n}", version=n)
        repo.accounts[f"acct_{n}"] = AccountLink(
            account_id=f"acct_{n}", customer_id=f"cus_{n}", linked_at=1
        )
    repo.records["cus_unlinked"] = record("cus_unlinked", None, version=1)
    auth = AuthSettings(internal_auth_secret=SECRET)  # type: ignore[arg-type]
    return api.Deps(reader=EntitlementReader(repo), auth=auth, max_batch=3)


def call(
    deps: api.Deps,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    audience: str = READ_AUDIENCE,
    **headers: str,
) -> flask.Response:
    headers.setdefault(
        "Authorization", f"Bearer {issue_token('svc-app', SECRET, audience=audience)}"
    )
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    with APP.test_request_context(path, method=method, headers=headers, **kwargs):
        return api.handle(flask.request, deps)


def test_by_account_returns_the_records_state_with_its_version(deps: api.Deps) -> None:
    resp = call(deps, "/v1/entitlements/acct_2")
    assert resp.status_code == 200
    body = CurrentEntitlements.model_validate_json(resp.get_data())
    assert (body.customer_id, body.account_id, body.version) == ("cus_2", "acct_2", 2)
    assert body.entitlements.plan == "team" and body.access is AccessLevel.FULL
    assert resp.headers["ETag"] == '"cus_2.2"'


def test_by_customer_finds_an_unlinked_customer(deps: api.Deps) -> None:
    resp = call(deps, "/v1/entitlements/by-customer/cus_unlinked")
    assert resp.status_code == 200 and resp.get_json()["account_id"] is None


def test_if_none_match_with_the_current_etag_answers_304(deps: api.Deps) -> None:
    etag = call(deps, "/v1/entitlements/acct_4").headers["ETag"]
    resp = call(deps, "/v1/entitlements/acct_4", **{"If-None-Match": f'W/"x", {etag}'})
    assert resp.status_code == 304 and resp.get_data() == b""
    stale = call(deps, "/v1/entitlements/acct_4", **{"If-None-Match": '"cus_4.3"'})
    assert stale.status_code == 200


def test_unknown_ids_are_404_with_a_body_that_names_them(deps: api.Deps) -> None:
    for path, named in (
        ("/v1/entitlements/acct_nobody", "Dataface account acct_nobody"),
        ("/v1/entitlements/by-customer/cus_nobody", "Stripe customer cus_nobody"),
    ):
        resp = call(deps, path)
        assert resp.status_code == 404
        assert resp.get_json()["error"] == "not_found" and named in resp.get_json()["message"]


def test_without_a_read_token_nothing_is_read(deps: api.Deps) -> None:
    assert call(deps, "/v1/entitlements/acct_1", Authorization="").status_code == 401
    # A checkout token (another audience) does not open the read API.
    assert call(deps, "/v1/entitlements/acct_1", audience=AUDIENCE).status_code == 401


def test_batch_get_answers_found_and_not_found(deps: api.Deps) -> None:
    body = {"account_ids": ["acct_1", "acct_nobody"], "customer_ids": ["cus_3"]}
    resp = call(deps, "/v1/entitlements:batchGet", method="POST", body=body)
    assert resp.status_code == 200
    payload = resp.get_json()
    assert [e["customer_id"] for e in payload["entitlements"]] == ["cus_1", "cus_3"]
    assert payload["not_found"] == {"account_ids": ["acct_nobody"], "customer_ids": []}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"account_ids": ["a/b"]}, 422),
        ({"account_ids": ["a", "b", "c", "d"]}, 422),
        ({"accounts": ["a"]}, 422),
        ([1, 2], 400),
    ],
)
def test_bad_batch_requests_are_refused(deps: api.Deps, body: Any, status: int) -> None:
    assert call(deps, "/v1/entitlements:batchGet", method="POST", body=body).status_code == status


def test_paging_walks_every_customer_once(deps: api.Deps) -> None:
    seen: list[str] = []
    token = ""
    while True:
        resp = call(deps, f"/v1/entitlements?page_size=2&page_token={token}")
        assert resp.status_code == 200
        page = resp.get_json()
        seen.extend(e["customer_id"] for e in page["entitlements"])
        if page["next_page_token"] is None:
            break
        token = page["next_page_token"]
    assert seen == sorted([f"cus_{n}" for n in range(1, 6)] + ["cus_unlinked"])


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/v1/entitlements?page_size=0", "GET", 400),
        ("/v1/entitlements?page_size=many", "GET", 400),
        ("/v1/entitlements?page_token=a%2Fb", "GET", 400),
        ("/v1/entitlements/acct_1", "DELETE", 405),
        ("/v1/entitlements:batchGet", "GET", 405),
        ("/v1/entitlements/a/b/c", "GET", 404),
        ("/v2/other", "GET", 404),
    ],
)
def test_bad_requests_get_clear_statuses(
    deps: api.Deps, path: str, method: str, status: int
) -> None:
    resp = call(deps, path, method=method)
    assert resp.status_code == status
    if status != 405:
        assert json.loads(resp.get_data())["message"]


def test_a_function_url_prefix_is_tolerated(deps: api.Deps) -> None:
    assert call(deps, "/entitlements_api/v1/entitlements/acct_5").get_json()["version"] == 5


def test_found_links_are_cached_for_a_minute_missing_ones_never() -> None:
    repo = FakeRepository()
    repo.records["cus_a"] = record("cus_a", "acct_a")
    repo.records["cus_b"] = record("cus_b", "acct_a", version=9)
    now = [0.0]
    reader = EntitlementReader(repo, clock=lambda: now[0])
    assert reader.by_account("acct_a") is None  # not linked yet
    repo.accounts["acct_a"] = AccountLink(account_id="acct_a", customer_id="cus_a", linked_at=1)
    assert reader.by_account("acct_a").customer_id == "cus_a"  # type: ignore[union-attr]
    repo.accounts["acct_a"] = AccountLink(account_id="acct_a", customer_id="cus_b", linked_at=2)
    now[0] = 59.0
    assert reader.by_account("acct_a").customer_id == "cus_a"  # type: ignore[union-attr]
    now[0] = 61.0
    assert reader.by_account("acct_a").customer_id == "cus_b"  # type: ignore[union-attr]
