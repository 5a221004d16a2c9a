"""Write the JSON Schemas of the v1 contract next to this module.

`python -m schemas.export` (or `make schema`) writes the entitlement-changed message and
the read API's answer; a test fails when a committed file is stale, so a model change
cannot ship without its contract, and tests/unit/test_contract_compat.py fails when the
change would break a v1 consumer.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.documents import (
    AccountLink,
    AuditRecord,
    BillingRecord,
    FailureRecord,
    HistoryEntry,
    OutboxEntry,
    ProcessedEvent,
)
from schemas.entitlements import CurrentEntitlements, EntitlementChanged

_HERE = Path(__file__).parent
SCHEMA_PATH = _HERE / "entitlement_changed.v1.schema.json"
READ_SCHEMA_PATH = _HERE / "current_entitlements.v1.schema.json"
SCHEMAS: dict[Path, type[BaseModel]] = {
    SCHEMA_PATH: EntitlementChanged,
    READ_SCHEMA_PATH: CurrentEntitlements,
}


# Our Firestore documents, as the release that reads them validates them. A rollback runs
# the previous release against documents the newer one wrote, so its reader schemas are
# kept (schemas/compat/documents.v1.baseline.json) and tests/unit/test_document_compat.py
# checks every change against them.
DOCUMENTS: dict[str, type[BaseModel]] = {
    "customers": BillingRecord,
    "history": HistoryEntry,
    "outbox": OutboxEntry,
    "accounts": AccountLink,
    "processed_events": ProcessedEvent,
    "failures": FailureRecord,
    "ops_audit": AuditRecord,
}


def render_documents() -> str:
    schemas = {
        name: model.model_json_schema(mode="validation") for name, model in DOCUMENTS.items()
    }
    return json.dumps(schemas, indent=2, sort_keys=True) + "\n"


def render(model: type[BaseModel] = EntitlementChanged) -> str:
    path = next(p for p, m in SCHEMAS.items() if m is model)
    # Serialization mode: what we emit, so a field with a default is still always present.
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = f"https://dataface.example/schemas/{path.name}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for path, model in SCHEMAS.items():
        path.write_text(render(model), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
