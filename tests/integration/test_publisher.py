"""What only the real adapter has: a gRPC channel that can fail and a timeout to honour.

The behaviour it shares with FakePublisher (ids, read-back, ordering keys, missing
topics, a key never stuck after a failure) is in test_publisher_contract.py.
"""

from __future__ import annotations

import time

import pytest
from google.api_core.exceptions import GoogleAPIError

from functions.adapters.pubsub_publisher import PubSubPublisher
from functions.errors import TransientError
from infra.local.emulators import free_port


def test_unreachable_pubsub_is_transient_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens
    publisher = PubSubPublisher("unreachable-project")

    started = time.monotonic()
    with pytest.raises(TransientError, match="stripe-events") as failed:
        publisher.publish("stripe-events", b"x", attributes={}, ordering_key="k", timeout=1.0)

    # Retried within the caller's budget, not for the client's default minute.
    assert time.monotonic() - started < 5
    # The Google error stays attached for the logs.
    assert isinstance(failed.value.__cause__, GoogleAPIError)
