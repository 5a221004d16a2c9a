"""The local harness pieces that need no emulator: prerequisites, topology as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.config import CommonSettings
from infra.local import emulators
from infra.local.stack import curl_example, main_exports
from infra.local.topology import desired_topology


def test_missing_gcloud_or_java_stops_with_one_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither gcloud nor java on it
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    with pytest.raises(emulators.EmulatorsUnavailable) as caught:
        emulators.start_emulators()
    message = str(caught.value)
    assert message.startswith("gcloud and java not found")
    assert "google-cloud-cli-pubsub-emulator" in message
    assert "openjdk-17-jre-headless" in message


def test_env_hosts_that_do_not_answer_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"127.0.0.1:{emulators.free_port()}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", dead)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", dead)
    with pytest.raises(emulators.EmulatorsUnavailable, match=dead):
        emulators.start_emulators()


def test_topology_routes_and_dead_letters_from_config_names() -> None:
    settings = CommonSettings(google_cloud_project="p", stripe_events_topic="custom-events")
    topo = desired_topology(
        settings, subscriber_push_endpoint="http://sub/", max_delivery_attempts=7
    )
    assert [t.name for t in topo.topics] == [
        "custom-events",
        "entitlement-changed",
        "stripe-events-dead-letter",
    ]
    subs = {s.name: s for s in topo.subscriptions}
    assert set(subs) == {
        "stripe-events-subscriber",
        "stripe-events-dead-letter-ops",
        "entitlement-changed-probe",
    }
    probe = subs["entitlement-changed-probe"]
    assert (probe.topic, probe.push_endpoint, probe.filter) == (
        "entitlement-changed",
        None,
        'attributes.synthetic = "true"',
    )
    push = subs["stripe-events-subscriber"]
    assert (push.topic, push.push_endpoint, push.enable_message_ordering) == (
        "custom-events",
        "http://sub/",
        True,
    )
    assert (push.dead_letter_topic, push.max_delivery_attempts) == (
        "stripe-events-dead-letter",
        7,
    )
    ops = subs["stripe-events-dead-letter-ops"]
    assert (ops.topic, ops.push_endpoint, ops.dead_letter_topic) == (
        "stripe-events-dead-letter",
        None,
        None,
    )


def test_observer_subscriptions_are_opt_in_pull_and_ordered() -> None:
    settings = CommonSettings(google_cloud_project="p")
    topo = desired_topology(
        settings, subscriber_push_endpoint="http://x", observer_subscriptions=True
    )
    observers = {s.name: s for s in topo.subscriptions if s.name.endswith("-observer")}
    assert {
        n: (s.topic, s.push_endpoint, s.enable_message_ordering) for n, s in observers.items()
    } == {
        "entitlement-changed-observer": ("entitlement-changed", None, True),
        "stripe-events-observer": ("stripe-events", None, True),
    }


@pytest.mark.parametrize("attempts", [4, 101])
def test_delivery_attempts_outside_pubsub_bounds_are_refused(attempts: int) -> None:
    with pytest.raises(ValueError, match="between 5 and 100"):
        desired_topology(
            CommonSettings(google_cloud_project="p"),
            subscriber_push_endpoint="http://x",
            max_delivery_attempts=attempts,
        )


def test_main_exports_reads_definitions_and_imports(tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text("from x import process_stripe_event\n\ndef stripe_webhook(r):\n    pass\n")
    assert main_exports("stripe_webhook", source)
    assert main_exports("process_stripe_event", source)
    assert not main_exports("relay_sweep", source)
    assert not main_exports("stripe_webhook", tmp_path / "missing.py")


def test_curl_example_is_signed_for_the_given_secret() -> None:
    secret = "whsec_" + "d" * 32
    command = curl_example("http://127.0.0.1:8080/", secret)
    assert command.startswith("curl -sS -X POST http://127.0.0.1:8080/")
    assert "Stripe-Signature: t=" in command and ",v1=" in command
    assert secret not in command


def test_missing_stripe_fixtures_fail_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.local import stripe_fixtures

    stripe_fixtures.resources.cache_clear()
    monkeypatch.setenv(stripe_fixtures.ENV, str(tmp_path / "nowhere.json"))
    try:
        with pytest.raises(stripe_fixtures.FixturesMissing, match=r"nowhere\.json"):
            stripe_fixtures.resources()
        copy = tmp_path / "fixtures3.json"
        copy.write_text('{"resources": {"subscription": {"object": "subscription"}}}')
        monkeypatch.setenv(stripe_fixtures.ENV, str(copy))
        stripe_fixtures.resources.cache_clear()
        assert stripe_fixtures.resources() == {"subscription": {"object": "subscription"}}
    finally:
        stripe_fixtures.resources.cache_clear()
