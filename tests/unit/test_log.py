"""Log lines are Cloud Logging JSON and never carry secrets, signatures or bodies."""

from __future__ import annotations

import json

import pytest

from functions.log import get_logger
from tests.support.logs import last_line


def test_cloud_logging_fields(capsys: pytest.CaptureFixture[str]) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    get_logger(component="webhook", trace_id=trace, project="proj").warning(
        "webhook_request", outcome="livemode_mismatch", status_code=200
    )
    line = last_line(capsys)
    assert line["severity"] == "WARNING"
    assert line["message"] == "webhook_request"
    assert line["trace_id"] == trace
    assert line["logging.googleapis.com/trace"] == f"projects/proj/traces/{trace}"
    assert (line["component"], line["outcome"], line["status_code"]) == (
        "webhook",
        "livemode_mismatch",
        200,
    )
    assert "project" not in line


def test_secrets_signatures_and_bodies_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "whsec_" + "s" * 32
    signature = "t=1,v1=" + "ab" * 32
    get_logger().error(
        "oops",
        stripe_webhook_secret=secret,
        signature=signature,
        body='{"card": "4242"}',
        detail=f"header was {signature} with {secret}",
        note="card 4242 4242 4242 4242 declined",
        secret_index=1,
    )
    line = last_line(capsys)
    text = json.dumps(line)
    assert secret not in text
    assert "ab" * 32 not in text
    assert "4242 4242 4242 4242" not in text
    assert line["body"] == "[redacted]"
    # Which configured secret matched is an index, safe and needed by on-call.
    assert line["secret_index"] == 1
