"""The committed entitlement-changed v1 JSON Schema matches the pydantic model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import export
from schemas.entitlements import EntitlementChanged


def test_committed_schema_is_current() -> None:
    assert export.SCHEMA_PATH.read_text() == export.render(), (
        "schemas/entitlement_changed.v1.schema.json is stale: run `make schema`"
    )


def test_schema_names_the_contract_fields() -> None:
    schema = json.loads(export.render())
    required = set(schema["required"])
    assert {
        "customer_id",
        "account_id",
        "version",
        "status",
        "access",
        "entitlements",
        "message",
        "causing_event_id",
        "effective_at",
    } <= required
    assert schema["properties"]["version"]["minimum"] == 1
    assert schema["additionalProperties"] is False
    assert schema["title"] == "EntitlementChangedV1"


def test_main_writes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    monkeypatch.setattr(export, "SCHEMA_PATH", target)
    export.main()
    written = json.loads(target.read_text())
    assert written == EntitlementChanged.model_json_schema() | {
        "$id": written["$id"],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
