"""Stripe's published object fixtures: the shapes the tests, the local Stripe server and
the bench build their objects from.

They are not vendored: `fixtures3.json` (from Stripe's openapi repository) sits in
`shared/stripe-fixtures/` beside this repository, as on CI's clean clones. A missing file
is an error naming where it was looked for, never a silent skip.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

ENV = "STRIPE_FIXTURES_FILE"
DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "stripe-fixtures" / "fixtures3.json"


class FixturesMissing(RuntimeError):
    """fixtures3.json is not where it should be; the message says where it was looked for."""


def fixtures_path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


@cache
def resources() -> dict[str, dict[str, Any]]:
    """Object type ("subscription", "invoice", ...) -> Stripe's example object."""
    path = fixtures_path()
    if not path.is_file():
        raise FixturesMissing(
            f"Stripe's object fixtures were not found at {path}. They are fixtures3.json "
            "from github.com/stripe/openapi, expected in shared/stripe-fixtures/ beside this "
            f"repository; set {ENV} to use a copy elsewhere."
        )
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())["resources"]
    return data
