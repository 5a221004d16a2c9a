"""A change to the v1 contract that would break a consumer fails here (additive ones pass)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from schemas import compat, export

Schema = dict[str, Any]


def _baseline(name: str) -> Schema:
    return json.loads((compat.BASELINES / name.replace(".schema", ".baseline")).read_text())


@pytest.mark.parametrize("path", list(export.SCHEMAS))
def test_current_contract_does_not_break_v1_consumers(path: Any) -> None:
    current = json.loads(export.render(export.SCHEMAS[path]))
    assert compat.breaking_changes(_baseline(path.name), current) == []


def _drop(field: str) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        del schema["properties"][field]
        schema["required"].remove(field)

    return change


def _optional(schema: Schema) -> None:
    schema["required"].remove("causing_event_id")


def _nullable(schema: Schema) -> None:
    schema["properties"]["version"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def _retyped_limit(schema: Schema) -> None:
    schema["$defs"]["Limits"]["properties"]["seats"] = {"type": "string"}


def _new_access_level(schema: Schema) -> None:
    schema["$defs"]["AccessLevel"]["enum"].append("premium")


def _new_status(schema: Schema) -> None:
    schema["properties"]["status"]["enum"].append("suspended")


BREAKING = {
    "removed field": _drop("access_until"),
    "renamed field": _drop("customer_id"),
    "required made optional": _optional,
    "made nullable": _nullable,
    "nested type changed": _retyped_limit,
    "closed vocabulary widened": _new_access_level,
    "status gained a value": _new_status,
}


@pytest.mark.parametrize("change", list(BREAKING.values()), ids=list(BREAKING))
def test_a_breaking_change_is_caught(change: Callable[[Schema], None]) -> None:
    baseline = _baseline(export.SCHEMA_PATH.name)
    changed = copy.deepcopy(baseline)
    change(changed)
    assert compat.breaking_changes(baseline, changed)


def _new_optional_field(schema: Schema) -> None:
    schema["properties"]["region"] = {"type": "string"}


def _new_feature(schema: Schema) -> None:
    features = schema["$defs"]["Entitlements"]["properties"]["features"]["items"]["anyOf"]
    features[0]["enum"].append("dbt_integration")


def _new_limit(schema: Schema) -> None:
    schema["$defs"]["Limits"]["properties"]["warehouses"] = {"type": "integer", "default": 1}


ADDITIVE = {"optional field": _new_optional_field, "feature": _new_feature, "limit": _new_limit}


@pytest.mark.parametrize("change", list(ADDITIVE.values()), ids=list(ADDITIVE))
def test_an_additive_change_passes(change: Callable[[Schema], None]) -> None:
    baseline = _baseline(export.SCHEMA_PATH.name)
    changed = copy.deepcopy(baseline)
    change(changed)
    assert compat.breaking_changes(baseline, changed) == []
