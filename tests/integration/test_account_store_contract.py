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
from functions.adapters.firestore_repository import FirestoreRepository
from functions.errors import NotFound, Unstorable
from functions.ports import AccountStore, BillingRepository, DecideFn, Operation
from schemas.documents import AccountLink, BillingRecord
from statemachine.decision import Decision
from tests.support.fake_accounts import FakeAccountStore
from tests.support.fake_repository import FakeRepository

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


@pytest.mark.parametrize("bad", ["a/b", "..", "__x__", "x" * 1501])
def test_row1_ids_firestore_cannot_store_are_permanent_and_create_nothing(
    store: AccountStore, bad: str
) -> None:
    with pytest.raises(Unstorable):
        store.link(bad, "cus_1", T0)
    with pytest.raises(Unstorable):
        store.get(bad)
    with pytest.raises(Unstorable):
        store.mark_trial_used(bad)


@pytest.fixture(params=["fake", pytest.param("firestore", marks=pytest.mark.emulator)])
def paired(request: pytest.FixtureRequest) -> Iterator[tuple[AccountStore, BillingRepository]]:
    """The account store and the repository over the same `accounts/` documents."""
    if request.param == "fake":
        repo = FakeRepository()
        yield FakeAccountStore(links=repo.accounts), repo
        return
    request.getfixturevalue("emulators")
    project = f"contract-{uuid.uuid4().hex[:10]}"
    yield FirestoreAccountStore(project), FirestoreRepository(project)


def _names_account(account_id: str) -> DecideFn:
    def decide(record: BillingRecord) -> Decision:
        new = record.model_copy(update={"account_id": account_id, "status": "active"})
        return Decision(kind="applied", record=new, reason="event names the account")

    return decide


def _event(event_id: str, customer_id: str) -> Operation:
    return Operation(
        op_id=event_id, op_type="checkout.session.completed", customer_id=customer_id, at=T0
    )


def test_row8_checkout_links_first_and_an_event_for_another_customer_is_refused(
    paired: tuple[AccountStore, BillingRepository],
) -> None:
    store, repo = paired
    first = store.link("acct_1", "cus_first", T0)

    result = repo.apply(_event("evt_2", "cus_second"), _names_account("acct_1"), marker_ttl_days=35)

    assert result.decision is not None and result.decision.kind == "anomaly"
    assert store.get("acct_1") == first
    assert repo.customer_for_account("acct_1") == "cus_first"
    taken = repo.get_record("cus_second")
    assert taken is not None and taken.account_id is None
    assert [a.code for a in taken.anomalies] == ["account_taken"]


def test_row8_an_event_links_first_and_checkout_for_another_customer_gets_that_link(
    paired: tuple[AccountStore, BillingRepository],
) -> None:
    store, repo = paired
    repo.apply(_event("evt_1", "cus_first"), _names_account("acct_1"), marker_ttl_days=35)

    later = store.link("acct_1", "cus_second", T0 + 60)

    assert later.customer_id == "cus_first" and later.linked_at == T0
    assert store.get("acct_1") == later
