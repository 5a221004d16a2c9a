"""Session-wide emulators and a fresh, provisioned project per test.

The emulators start once for the whole run (about 5 s) on free ports; each test gets its
own project id, which both emulators keep fully apart, so tests never see each other's
topics, messages or documents and nothing needs cleaning up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from functions.config import CommonSettings
from infra.local.emulators import Emulators, EmulatorsUnavailable, start_emulators
from infra.local.topology import Topology, desired_topology, provision

# Nothing listens on the discard port: pushes fail fast and are retried with backoff,
# which keeps webhook-only tests free of a subscriber.
UNUSED_PUSH_ENDPOINT = "http://127.0.0.1:9/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Anything that needs the emulators is an emulator test, marked or not.
    for item in items:
        if "emulators" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    try:
        started = start_emulators()
    except EmulatorsUnavailable as exc:
        pytest.exit(f"cannot run the emulator tests: {exc}", returncode=3)
    saved = {key: os.environ.get(key) for key in started.env()}
    os.environ.update(started.env())
    try:
        yield started
    finally:
        started.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class ProvisionedProject:
    project: str
    topology: Topology
    env: dict[str, str]


def provision_project(
    emulators: Emulators, *, push_endpoint: str = UNUSED_PUSH_ENDPOINT
) -> ProvisionedProject:
    project = f"test-{uuid.uuid4().hex[:8]}"
    topology = desired_topology(
        CommonSettings(google_cloud_project=project),
        subscriber_push_endpoint=push_endpoint,
        observer_subscriptions=True,
    )
    provision(project, topology)
    return ProvisionedProject(
        project=project,
        topology=topology,
        env={"GOOGLE_CLOUD_PROJECT": project, **emulators.env()},
    )


@pytest.fixture
def pubsub_project(emulators: Emulators) -> ProvisionedProject:
    """A fresh project id with the whole local topology (plus observers) provisioned."""
    return provision_project(emulators)
