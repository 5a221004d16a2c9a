"""One behavioural suite, two account stores: the in-memory fake and FirestoreAccountStore
on the emulator.

Checkout, portal and plan-change tests trust FakeAccountStore; this suite is what keeps it
honest. Only the "firestore" variant needs the emulators, so only it carries the emulator
marker: `-m "not emulator"` still checks the fake against the contract.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from functions.adapters.firestore_accounts import FirestoreAccountStore
from functions.errors import NotFound
from functions.ports import AccountStore
from schemas.documents import AccountLink
from tests.support.fake_accounts import FakeAccountStore

T0 = 1_700_000_000


@pytest.fixture(params=["fake", pytest.param("firestore", marks=pytest.mark.emulator)])
def store(request: pytest.FixtureRequest) -> Iterator[AccountStore]:
    if request.param == "fake":
        yield FakeAccountStore()
        return
    request.getfixturevalue("emulators")
    yield FirestoreAccountStore(f"contract-{uuid.uuid4().hex[:10]}")


def test_an_unknown_account_has_no_link(store: AccountStore) -> None:
    assert store.get("acct_unknown") is None


def test_link_creates_the_link_and_returns_what_is_stored(store: AccountStore) -> None:
    link = store.link("acct_1", "cus_1", T0)

    assert link == AccountLink(
        account_id="acct_1", customer_id="cus_1", linked_at=T0, trial_used=False
    )
    assert store.get("acct_1") == link


def test_the_first_link_wins_and_later_links_return_it_unchanged(store: AccountStore) -> None:
    first = store.link("acct_1", "cus_1", T0)

    # A second checkout for the same account (another customer created meanwhile, or the
    # same one retried later) must agree with the first.
    assert store.link("acct_1", "cus_2", T0 + 60) == first
    assert store.link("acct_1", "cus_1", T0 + 120) == first
    assert store.get("acct_1") == first


def test_accounts_are_kept_apart(store: AccountStore) -> None:
    store.link("acct_a", "cus_a", T0)
    store.link("acct_b", "cus_b", T0 + 1)
    store.mark_trial_used("acct_a")

    a, b = store.get("acct_a"), store.get("acct_b")
    assert a is not None and (a.customer_id, a.trial_used) == ("cus_a", True)
    assert b is not None and (b.customer_id, b.linked_at, b.trial_used) == ("cus_b", T0 + 1, False)


def test_a_used_trial_is_remembered_and_survives_a_later_link(store: AccountStore) -> None:
    store.link("acct_1", "cus_1", T0)

    store.mark_trial_used("acct_1")
    store.mark_trial_used("acct_1")  # a retried checkout marks it again: harmless

    expected = AccountLink(account_id="acct_1", customer_id="cus_1", linked_at=T0, trial_used=True)
    assert store.get("acct_1") == expected
    assert store.link("acct_1", "cus_2", T0 + 60) == expected


def test_marking_the_trial_of_an_unlinked_account_fails_and_creates_nothing(
    store: AccountStore,
) -> None:
    with pytest.raises(NotFound):
        store.mark_trial_used("acct_unknown")
    assert store.get("acct_unknown") is None


def test_concurrent_first_links_agree_on_one_customer(store: AccountStore) -> None:
    # Two browser tabs starting the first checkout at once: each may have created its own
    # Stripe customer, but they must all be told the same one.
    start = threading.Barrier(5)
    results: dict[str, AccountLink] = {}
    errors: list[BaseException] = []

    def first_checkout(customer_id: str) -> None:
        start.wait()
        try:
            results[customer_id] = store.link("acct_race", customer_id, T0)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=first_checkout, args=(f"cus_{n}",)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    stored = store.get("acct_race")
    assert stored is not None and stored.customer_id in results
    assert list(results.values()) == [stored] * 5
