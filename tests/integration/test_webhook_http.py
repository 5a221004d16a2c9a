"""The webhook over HTTP: real functions-framework process, real Pub/Sub emulator.

One webhook process serves the module (starting one costs a second or two); every test
drains the `stripe-events-observer` pull subscription, so each sees only its own events.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.local.emulators import Emulators, free_port
from infra.local.stack import ROOT, RunningFunction, start_function
from infra.local.topology import OBSERVER_STRIPE_EVENTS_SUBSCRIPTION
from tests.conftest import ProvisionedProject, provision_project
from tests.support.pubsub import Received, pull_all
from tests.support.signing import encode, signed_headers, stripe_event

pytestmark = pytest.mark.emulator

OLD = "whsec_old" + "a" * 24
NEW = "whsec_new" + "b" * 24


@pytest.fixture(scope="module")
def project(emulators: Emulators) -> ProvisionedProject:
    return provision_project(emulators)


def _serve(env: dict[str, str]) -> RunningFunction:
    return start_function("stripe_webhook", free_port(), env)


@pytest.fixture(scope="module")
def webhook(project: ProvisionedProject) -> Iterator[RunningFunction]:
    running = _serve(
        {
            **project.env,
            "STRIPE_WEBHOOK_SECRET": f"{NEW},{OLD}",
            "WEBHOOK_MAX_BODY_BYTES": "4096",
        }
    )
    yield running
    running.stop()


def observed(project: ProvisionedProject, *, expect: int | None, deadline: float) -> list[Received]:
    return pull_all(
        project.project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=expect, deadline=deadline
    )


def log_lines(fn: RunningFunction) -> list[dict[str, object]]:
    lines = []
    for raw in fn.logs().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return [line for line in lines if line.get("message") == "webhook_request"]


def test_valid_event_lands_on_the_topic_byte_for_byte(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    event = stripe_event("invoice.paid", customer="cus_int1", object_id="in_int1")
    body = encode(event)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        **signed_headers(body, [OLD]),
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
    }
    response = requests.post(webhook.url, data=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    [message] = observed(project, expect=1, deadline=15)
    assert message.data == body
    assert message.ordering_key == "cus_int1"
    assert message.attributes == {
        "event_id": event["id"],
        "event_type": "invoice.paid",
        "created": str(event["created"]),
        "livemode": "false",
        "api_version": event["api_version"],
        "object_id": "in_int1",
        "customer_id": "cus_int1",
        "trace_id": trace,
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
    }
    [line] = [line for line in log_lines(webhook) if line.get("event_id") == event["id"]]
    assert line["outcome"] == "published"
    assert line["secret_index"] == 1
    assert line["trace_id"] == trace
    assert line["logging.googleapis.com/trace"] == f"projects/{project.project}/traces/{trace}"
    text = webhook.logs()
    assert OLD not in text and NEW not in text and "Stripe-Signature" not in text


def test_one_customers_events_keep_their_order(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    ids = []
    for n in range(5):
        event = stripe_event(customer="cus_order", object_id=f"sub_{n}")
        ids.append(event["id"])
        body = encode(event)
        assert requests.post(
            webhook.url, data=body, headers=signed_headers(body, [NEW]), timeout=30
        ).ok
    messages = observed(project, expect=5, deadline=15)
    assert [m.attributes["event_id"] for m in messages] == ids
    assert {m.ordering_key for m in messages} == {"cus_order"}


def test_both_secrets_verify_during_rotation(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    sent = []
    for secrets in ([OLD], [NEW], [NEW, OLD]):
        event = stripe_event()
        body = encode(event)
        response = requests.post(
            webhook.url, data=body, headers=signed_headers(body, secrets), timeout=30
        )
        assert response.status_code == 200, secrets
        sent.append(event["id"])
    received = observed(project, expect=3, deadline=15)
    assert sorted(m.attributes["event_id"] for m in received) == sorted(sent)
    by_event = {line["event_id"]: line["secret_index"] for line in log_lines(webhook)}
    assert [by_event[i] for i in sent] == [1, 0, 0]


def test_bad_inputs_get_their_status_and_publish_nothing(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    body = encode(stripe_event())
    now = int(time.time())
    big = encode(stripe_event(extra={"pad": "x" * 5000}))
    cases: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
        ("GET", "get", b"", {}, 405, "method_not_allowed"),
        ("POST", "too large", big, signed_headers(big, [OLD]), 413, "too_large"),
        ("POST", "missing", body, {}, 400, "missing_signature"),
        ("POST", "malformed", body, {"Stripe-Signature": "t=now"}, 400, "malformed_signature"),
        (
            "POST",
            "wrong secret",
            body,
            signed_headers(body, ["whsec_wrong" + "z" * 20]),
            400,
            "bad_signature",
        ),
        ("POST", "stale", body, signed_headers(body, [OLD], now - 301), 400, "stale_timestamp"),
        ("POST", "future", body, signed_headers(body, [OLD], now + 360), 400, "future_timestamp"),
        ("POST", "not json", b"[1,2", signed_headers(b"[1,2", [OLD]), 400, "invalid_json"),
    ]
    for method, name, data, headers, status, reason in cases:
        response = requests.request(method, webhook.url, data=data, headers=headers, timeout=30)
        assert response.status_code == status, name
        assert response.json() == {"error": reason}, name
    assert observed(project, expect=None, deadline=3) == []


def test_livemode_mismatch_is_acknowledged_and_not_published(
    project: ProvisionedProject, webhook: RunningFunction
) -> None:
    event = stripe_event(livemode=True)
    body = encode(event)
    response = requests.post(
        webhook.url, data=body, headers=signed_headers(body, [OLD]), timeout=30
    )
    assert response.status_code == 200
    assert observed(project, expect=None, deadline=3) == []
    [line] = [line for line in log_lines(webhook) if line.get("event_id") == event["id"]]
    assert (line["outcome"], line["severity"]) == ("livemode_mismatch", "WARNING")


def test_missing_topic_gives_503(project: ProvisionedProject) -> None:
    running = _serve(
        {
            **project.env,
            "STRIPE_WEBHOOK_SECRET": OLD,
            "STRIPE_EVENTS_TOPIC": "no-such-topic",
            "WEBHOOK_PUBLISH_TIMEOUT_SECONDS": "5",
        }
    )
    try:
        body = encode(stripe_event())
        response = requests.post(
            running.url, data=body, headers=signed_headers(body, [OLD]), timeout=30
        )
        assert response.status_code == 503
        assert response.json() == {"error": "publish_failed"}
        assert [line["outcome"] for line in log_lines(running)] == ["publish_failed"]
    finally:
        running.stop()


def test_unreachable_pubsub_gives_503(project: ProvisionedProject) -> None:
    running = _serve(
        {
            **project.env,
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",  # nothing listens here
            "STRIPE_WEBHOOK_SECRET": OLD,
            "WEBHOOK_PUBLISH_TIMEOUT_SECONDS": "2",
        }
    )
    try:
        body = encode(stripe_event())
        started = time.monotonic()
        response = requests.post(
            running.url, data=body, headers=signed_headers(body, [OLD]), timeout=30
        )
        assert response.status_code == 503
        # Bounded by the publish timeout, well inside Stripe's own 10+ s webhook timeout.
        assert time.monotonic() - started < 8
    finally:
        running.stop()


def test_make_dev_serves_the_printed_url_and_curl_lands_on_the_topic(
    emulators: Emulators, tmp_path: Path
) -> None:
    project_id = f"test-dev-{os.urandom(4).hex()}"
    env = {
        **os.environ,
        **emulators.env(),
        "GOOGLE_CLOUD_PROJECT": project_id,
        "WEBHOOK_PORT": str(free_port()),
        "SUBSCRIBER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("STRIPE_WEBHOOK_SECRET", None)
    out = tmp_path / "dev.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.local.stack", "dev"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while "running; Ctrl-C to stop" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        printed = out.read_text()
        assert f"webhook URL:      http://127.0.0.1:{env['WEBHOOK_PORT']}/" in printed
        assert re.search(r"STRIPE_WEBHOOK_SECRET=whsec_\w+", printed)
        curl = next(line for line in printed.splitlines() if line.startswith("curl "))
        result = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
        )
        assert json.loads(result.stdout) == {"received": True}
        [message] = pull_all(project_id, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, expect=1, deadline=15)
        assert message.attributes["customer_id"] == "cus_dev"
        assert message.ordering_key == "cus_dev"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert "stopping..." in out.read_text()
    # The functions it started are gone with it.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{env['WEBHOOK_PORT']}/", timeout=2)
