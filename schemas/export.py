"""Write the JSON Schema of the entitlement-changed message (v1) next to this module.

`python -m schemas.export` (or `make schema`); a test fails when the committed file is
stale, so a model change cannot ship without its contract.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas.entitlements import EntitlementChanged

SCHEMA_PATH = Path(__file__).with_name("entitlement_changed.v1.schema.json")


def render() -> str:
    schema = EntitlementChanged.model_json_schema()
    schema["$id"] = "https://dataface.example/schemas/entitlement_changed.v1.schema.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
