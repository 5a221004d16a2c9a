"""Documents a newer release writes stay readable by the release before it (rollback).

`schemas/compat/documents.v1.baseline.json` holds the reader schemas of the release that
may be rolled back to. A model change that the older reader could not read (a removed
field, a type widened, a new value of a Literal) fails here; then either keep the change
additive or ship it in two releases (readers first). Update the baseline only once no
running or roll-back-able release predates the change: `python -m schemas.export` writes
the current schemas, copy them over the baseline in the same commit that says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

import statemachine
from functions.ports import Operation
from infra.local.scenarios import SCENARIOS, build
from schemas import compat, export
from schemas.stripe import StripeEvent
from statemachine.decision import Policy
from tests.support.fake_repository import FakeRepository

BASELINE: dict[str, Any] = json.loads((compat.BASELINES / "documents.v1.baseline.json").read_text())


@pytest.mark.parametrize("name", sorted(export.DOCUMENTS))
def test_current_models_write_what_the_previous_release_reads(name: str) -> None:
    current = export.DOCUMENTS[name].model_json_schema(mode="validation")
    assert compat.breaking_changes(BASELINE[name], current) == []


def test_a_new_literal_value_or_a_dropped_field_is_caught() -> None:
    old = BASELINE["history"]
    widened = json.loads(json.dumps(old))
    widened["properties"]["decision"]["enum"].append("rewound")
    assert compat.breaking_changes(old, widened)
    dropped = json.loads(json.dumps(BASELINE["customers"]))
    del dropped["properties"]["version"]
    assert compat.breaking_changes(BASELINE["customers"], dropped)


def _written_documents() -> dict[str, list[dict[str, Any]]]:
    """What a run of every scenario leaves in the store, as the adapter dumps it."""
    repo = FakeRepository()
    for name in SCENARIOS:
        scenario = build(name, customer_id=f"cus_doc{name.replace('_', '')[:20]}")
        for raw in scenario.events:
            event = StripeEvent.model_validate(raw)
            if not statemachine.is_handled_event_type(event.type) or not event.customer_id:
                continue
            op = Operation(event.id, event.type, event.customer_id, event.created)
            repo.apply(
                op, lambda r, e=event: statemachine.decide(r, e, Policy()), marker_ttl_days=35
            )
    dump = lambda models: [m.model_dump(mode="json") for m in models]  # noqa: E731
    return {
        "customers": dump(repo.records.values()),
        "history": dump(h for entries in repo.history_entries.values() for h in entries),
        "outbox": dump(repo.outbox.values()),
        "accounts": dump(repo.accounts.values()),
    }


def test_every_document_the_scenarios_write_validates_against_the_previous_readers() -> None:
    written = _written_documents()
    assert all(written.values()), {k: len(v) for k, v in written.items()}
    for name, documents in written.items():
        validator = Draft202012Validator(BASELINE[name])
        problems = [e.message for doc in documents for e in validator.iter_errors(doc)]
        assert problems == [], name
