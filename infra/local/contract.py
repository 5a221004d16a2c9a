"""Check entitlement-changed messages the way a downstream consumer would: against the
exported JSON Schema (schemas/entitlement_changed.v1.schema.json), not our own models."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from schemas.export import SCHEMA_PATH


@cache
def _validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(
    payload: Mapping[str, Any], attributes: Mapping[str, str] | None = None
) -> list[str]:
    """What is wrong with one message (empty: it holds the v1 contract)."""
    where = f"{payload.get('customer_id')} v{payload.get('version')}"
    found = [f"{where}: {e.message}" for e in _validator().iter_errors(payload)]
    for name in ("published_at", "trace_id"):
        if payload.get(name) in (None, ""):
            found.append(f"{where}: {name} not set")
    if attributes is not None:
        expected = {
            "customer_id": payload.get("customer_id"),
            "version": str(payload.get("version")),
        }
        expected["trace_id"] = payload.get("trace_id")
        wrong = {k for k, v in expected.items() if attributes.get(k) != v}
        found.extend(f"{where}: attribute {k} disagrees with the payload" for k in sorted(wrong))
    return found


def all_violations(payloads: Iterable[Mapping[str, Any]]) -> list[str]:
    return [problem for payload in payloads for problem in violations(payload)]
