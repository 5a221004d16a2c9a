"""The committed v1 JSON Schemas match the pydantic models and say what consumers need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import export
from schemas.entitlements import (
    FEATURE_MEANING,
    LIMIT_MEANING,
    MESSAGE_CODE_MEANING,
    CurrentEntitlements,
    EntitlementChanged,
    Limits,
)
from statemachine import MESSAGES
from statemachine.catalog import CATALOG


@pytest.mark.parametrize("path", list(export.SCHEMAS))
def test_committed_schema_is_current(path: Path) -> None:
    assert path.read_text() == export.render(export.SCHEMAS[path]), (
        f"{path.name} is stale: run `make schema`"
    )


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_message_schema_names_the_contract_fields() -> None:
    schema = json.loads(export.render(EntitlementChanged))
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
        "published_at",
        "trace_id",
    } <= required
    assert schema["properties"]["version"]["minimum"] == 1
    assert schema["title"] == "EntitlementChangedV1"


@pytest.mark.parametrize("model", [EntitlementChanged, CurrentEntitlements])
def test_schema_is_additive_safe(model: type[EntitlementChanged]) -> None:
    # A consumer validating with this schema must not break on a field added within v1.
    nodes = _walk(json.loads(export.render(model)))
    assert not [n for n in nodes if n.get("additionalProperties") is False]


def test_vocabularies_are_the_ones_the_domain_uses() -> None:
    catalog_features = {f for plan in CATALOG.plans for f in plan.features} | {
        f for add_on in CATALOG.add_ons for f in add_on.features
    }
    assert set(FEATURE_MEANING) == catalog_features | {"read_only"}
    assert set(MESSAGE_CODE_MEANING) == set(MESSAGES)
    assert set(LIMIT_MEANING) == set(Limits.model_fields)


def test_schema_lists_known_values_with_their_meaning() -> None:
    schema = json.loads(export.render(EntitlementChanged))
    access = schema["$defs"]["AccessLevel"]["enum"]
    assert access == ["full", "grace", "restricted", "none"]
    status = schema["properties"]["status"]
    assert "past_due" in status["enum"] and "past_due:" in status["description"]
    features = schema["$defs"]["Entitlements"]["properties"]["features"]["items"]["anyOf"]
    assert set(features[0]["enum"]) == set(FEATURE_MEANING)
    assert "read_only:" in features[0]["description"]
    assert features[1] == {"type": "string", "description": "a value added later within v1"}


def test_main_writes_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = {tmp_path / p.name: m for p, m in export.SCHEMAS.items()}
    monkeypatch.setattr(export, "SCHEMAS", targets)
    export.main()
    for path, model in targets.items():
        written = json.loads(path.read_text())
        assert written == model.model_json_schema(mode="serialization") | {
            "$id": f"https://dataface.example/schemas/{path.name}",
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        }
