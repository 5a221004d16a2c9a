"""Read our JSON log lines back in unit tests.

Lines go to stdout (Cloud Logging), except after the billing-ops CLI ran in the same
process: it points them at stderr so its own stdout stays parseable. Read both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    captured = capsys.readouterr()
    lines: list[dict[str, Any]] = []
    for raw in (captured.out + "\n" + captured.err).splitlines():
        text = raw.strip()
        if text.startswith("{"):
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                lines.append(parsed)
    return lines


def last_line(capsys: pytest.CaptureFixture[str], message: str | None = None) -> dict[str, Any]:
    lines = [line for line in json_lines(capsys) if message is None or line["message"] == message]
    assert lines, "no JSON log line captured"
    return lines[-1]
