"""structlog configured for Cloud Logging: one JSON object per line on stdout.

Cloud Logging reads `severity`, `message` and `logging.googleapis.com/trace` from the JSON
payload. A redaction processor drops anything that looks like a secret, a signature, a
raw payload or card data, so a careless `log.info(..., body=raw)` cannot leak it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "exception": "ERROR",
}
_FORBIDDEN_KEY = re.compile(r"secret|signature|password|token|body|payload|card|api_key", re.I)
# A PAN is 13-19 digits, optionally grouped; masked wherever it appears in a string value.
_CARD_NUMBER = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_WHSEC = re.compile(r"whsec_[A-Za-z0-9]+|sk_(?:test|live)_[A-Za-z0-9]+|v1=[0-9a-f]{16,}")

# Safe by construction despite matching the pattern: a position, never the secret itself.
_ALLOWED_KEYS = frozenset({"secret_index"})

_configured = False
_to_stderr = False


class _Stream:
    """The process's stdout (or stderr) looked up at write time, not at configure time:
    test runners and the CLI runner swap sys.stdout per invocation."""

    def write(self, text: str) -> int:
        return (sys.stderr if _to_stderr else sys.stdout).write(text)

    def flush(self) -> None:
        (sys.stderr if _to_stderr else sys.stdout).flush()


def log_to_stderr(enabled: bool = True) -> None:
    """The CLI's stdout is its output (`--json | jq`), so its log lines go to stderr."""
    global _to_stderr  # noqa: PLW0603 - one process-wide switch, read at write time
    _to_stderr = enabled


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _FORBIDDEN_KEY.search(key) and key not in _ALLOWED_KEYS:
            event_dict[key] = "[redacted]"
            continue
        value = event_dict[key]
        if isinstance(value, str):
            value = _WHSEC.sub("[redacted]", value)
            event_dict[key] = _CARD_NUMBER.sub("[redacted-number]", value)
    return event_dict


def _cloud_logging_fields(
    _: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict["severity"] = _SEVERITY.get(method, "DEFAULT")
    event_dict["message"] = event_dict.pop("event", "")
    project = event_dict.pop("project", None)
    trace_id = event_dict.pop("trace_id", None)
    if trace_id:
        event_dict["trace_id"] = trace_id
        if project:
            event_dict["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace_id}"
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    """Idempotent; entry points call it on first use, never at import time."""
    global _configured  # noqa: PLW0603 - process-wide logging set-up happens once
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            _redact,
            _cloud_logging_fields,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(_Stream()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(**bound: Any) -> Any:
    configure_logging()
    return structlog.get_logger().bind(**bound)
