"""Does a new JSON Schema still describe every message a v1 consumer can read?

The baselines next to this module are the v1 contract as first published. A change breaks
a consumer when it removes or renames a field, makes a required field optional, widens a
type (a field that may now be null, or a string now a number), or adds a value to a
closed vocabulary. Adding optional fields and values to open vocabularies (an `anyOf`
whose last branch accepts any string) is additive and passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASELINES = Path(__file__).parent

Schema = dict[str, Any]


def breaking_changes(baseline: Schema, current: Schema) -> list[str]:
    checker = _Checker(baseline, current)
    checker.compare(baseline, current, "$")
    return checker.problems


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _types(node: Schema, root: Schema) -> set[str]:
    node = _resolve(node, root)
    if "anyOf" in node:
        return set().union(*(_types(branch, root) for branch in node["anyOf"]))
    if "type" in node:
        return {node["type"]}
    return {"object"} if "properties" in node else set()


def _open(node: Schema) -> bool:
    branches = node.get("anyOf", [])
    return bool(branches) and branches[-1].get("type") == "string" and "enum" not in branches[-1]


def _closed_values(node: Schema, root: Schema) -> set[Any] | None:
    node = _resolve(node, root)
    if _open(node):
        return None
    if "enum" in node:
        return set(node["enum"])
    if "const" in node:
        return {node["const"]}
    return None


class _Checker:
    def __init__(self, baseline: Schema, current: Schema) -> None:
        self.base_root, self.cur_root = baseline, current
        self.problems: list[str] = []

    def compare(self, base: Schema, cur: Schema, at: str) -> None:
        base, cur = _resolve(base, self.base_root), _resolve(cur, self.cur_root)
        widened = _types(cur, self.cur_root) - _types(base, self.base_root)
        if widened:
            self.problems.append(f"{at}: type widened by {sorted(widened)}")
        before = _closed_values(base, self.base_root)
        after = _closed_values(cur, self.cur_root)
        if before is not None and (after is None or after - before):
            added = "any value" if after is None else sorted(map(str, after - before))
            self.problems.append(f"{at}: closed vocabulary gained {added}")
        self._properties(base, cur, at)
        if "items" in base and "items" in cur:
            self.compare(base["items"], cur["items"], f"{at}[]")
        for b_branch, c_branch in zip(base.get("anyOf", []), cur.get("anyOf", []), strict=False):
            if _resolve(b_branch, self.base_root).get("properties"):
                self.compare(b_branch, c_branch, at)

    def _properties(self, base: Schema, cur: Schema, at: str) -> None:
        current = cur.get("properties", {})
        for name, prop in base.get("properties", {}).items():
            if name not in current:
                self.problems.append(f"{at}.{name}: removed")
                continue
            if name in base.get("required", []) and name not in cur.get("required", []):
                self.problems.append(f"{at}.{name}: no longer required")
            self.compare(prop, current[name], f"{at}.{name}")
