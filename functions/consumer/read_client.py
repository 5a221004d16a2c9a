"""HTTP client of the read API (`functions/entrypoints/entitlements.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import requests

from schemas.entitlements import CurrentEntitlements
from schemas.read_api import BatchGetResponse, EntitlementsPage


class ReadApiError(Exception):
    """The read API answered something other than the documented success or 404."""


class ReadApiClient:
    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        # A callable: bearer tokens are short-lived, so each request asks for a fresh one.
        self._token = token
        self._timeout = timeout
        self._session = session or requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, list[str]] | None = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token()}"}
        response = self._session.request(
            method,
            f"{self._base}{path}",
            headers=headers,
            params=params,
            json=body,
            timeout=self._timeout,
        )
        if response.status_code not in (200, 404):
            raise ReadApiError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    def account(self, account_id: str) -> CurrentEntitlements | None:
        response = self._call("GET", f"/v1/entitlements/{account_id}")
        if response.status_code == 404:
            return None
        return CurrentEntitlements.model_validate_json(response.content)

    def customer(self, customer_id: str) -> CurrentEntitlements | None:
        response = self._call("GET", f"/v1/entitlements/by-customer/{customer_id}")
        if response.status_code == 404:
            return None
        return CurrentEntitlements.model_validate_json(response.content)

    def batch(
        self, account_ids: Sequence[str] = (), customer_ids: Sequence[str] = ()
    ) -> BatchGetResponse:
        body = {"account_ids": list(account_ids), "customer_ids": list(customer_ids)}
        response = self._call("POST", "/v1/entitlements:batchGet", body=body)
        return BatchGetResponse.model_validate_json(response.content)

    def every(self, page_size: int = 100) -> Iterator[CurrentEntitlements]:
        """Every customer's current entitlements, page by page (a cold start)."""
        token: str | None = None
        while True:
            params = {"page_size": str(page_size), **({"page_token": token} if token else {})}
            response = self._call("GET", "/v1/entitlements", params)
            page = EntitlementsPage.model_validate_json(response.content)
            yield from page.entitlements
            token = page.next_page_token
            if token is None:
                return
