"""Fixtures for the Stripe-facing integration tests: the local Stripe server and Firestore.

Firestore comes from the shared session fixture `emulators` (tests/conftest.py) when it
exists; otherwise this module starts the Firestore emulator itself for the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from functions import composition
from functions.adapters.firestore_accounts import FirestoreAccountStore
from functions.adapters.stripe_gateway import SdkStripeGateway
from functions.config import reset_settings_cache
from functions.entrypoints.auth import issue_token
from functions.services.catalog_sync import apply_sync, plan_sync
from infra.local.emulators import Emulators
from statemachine.catalog import CATALOG
from tests.support.stripe_params_check import request_problems
from tests.support.stripe_server import StripeServer


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    server = StripeServer().start()
    yield server
    server.stop()
    # Whatever a test made us send, every parameter must exist in the pinned API version's
    # request types (the SDK's stripe.params): an SDK upgrade that drops one fails here.
    assert request_problems(server.all_requests) == []


@pytest.fixture(scope="session")
def firestore_emulator(emulators: Emulators) -> str:
    """The session's Firestore emulator (a missing emulator stops the run, never skips)."""
    return emulators.firestore_host


@pytest.fixture
def firestore_project(firestore_emulator: str) -> str:
    """A fresh project id per test: the emulator keeps projects apart."""
    return f"demo-billing-{uuid.uuid4().hex[:10]}"


# -- the checkout/portal/plan-change functions, served by functions-framework ----------

ROOT = Path(__file__).resolve().parents[2]
SECRET = "local-test-secret-" + "x" * 32
SUCCESS = "https://app.dataface.test/billing/success"
CANCEL = "https://app.dataface.test/billing/cancel"
RETURN = "https://app.dataface.test/settings/billing"


def price_id(server: StripeServer, lookup_key: str) -> str:
    return next(p["id"] for p in server.state.prices.values() if p["lookup_key"] == lookup_key)


@pytest.fixture(scope="session")
def entry_source() -> Path:
    """The deployed entry module: the functions are served from main.py as in production."""
    return ROOT / "main.py"


@pytest.fixture
def checkout_env(
    stripe_server: StripeServer, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    for name, value in {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "STRIPE_API_KEY": "sk_test_local",
        "STRIPE_API_BASE": stripe_server.url,
        "CHECKOUT_SUCCESS_URL": SUCCESS,
        "CHECKOUT_CANCEL_URL": CANCEL,
        "PORTAL_RETURN_URL": RETURN,
        "INTERNAL_AUTH_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    composition.reset()
    reset_settings_cache()
    gateway = SdkStripeGateway("sk_test_local", api_base=stripe_server.url)
    apply_sync(plan_sync(CATALOG, gateway), gateway)
    stripe_server.clear_requests()
    yield
    composition.reset()
    reset_settings_cache()


@pytest.fixture
def account_store(checkout_env: None, firestore_project: str) -> FirestoreAccountStore:
    return FirestoreAccountStore(firestore_project)


class Caller:
    def __init__(self, source: Path) -> None:
        self._clients: dict[str, FlaskClient] = {}
        self._source = source

    def __call__(
        self,
        target: str,
        body: Any,
        *,
        account: str | None = None,
        token: str | None = None,
        method: str = "POST",
    ) -> Any:
        if target not in self._clients:
            app = functions_framework.create_app(target=target, source=str(self._source))
            self._clients[target] = app.test_client()
        headers = {}
        if token is None and account is not None:
            token = issue_token(account, SECRET)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        client = self._clients[target]
        if isinstance(body, (dict, list)):
            return client.open("/", method=method, json=body, headers=headers)
        return client.open(
            "/", method=method, data=body, headers=headers, content_type="application/json"
        )


@pytest.fixture
def checkout_fn(checkout_env: None, entry_source: Path) -> Caller:
    return Caller(entry_source)
