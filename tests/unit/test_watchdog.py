"""The push-loop watchdog's rule (infra/local/watchdog.py) on a fake clock: messages
outstanding and no delivery for `stall_seconds` is reported once, the next delivery is
reported too, and an idle stack or a failing-but-delivering one is not a stall. The real
stall (a frozen subscriber under `make dev`) is in test_dev_stack_supervision.py."""

from __future__ import annotations

import json
from pathlib import Path

from infra.local.watchdog import WATCHDOG_SUBSCRIPTION, PushWatchdog
from tests.support.fake_pull_subscriber import FakePullSubscriber


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.now = 1000.0
        self.log = tmp_path / "subscriber.log"
        self.log.write_text("")
        self.client = FakePullSubscriber()
        self.lines: list[str] = []
        self.watchdog = PushWatchdog(
            "p",
            "stripe-events",
            lambda: self.log,
            self.lines.append,
            stall_seconds=10,
            clock=lambda: self.now,
            client=self.client,
        )

    def publish(self, *ids: str) -> None:
        self.client.queued += ids

    def deliver(self, message_id: str, message: str = "event_processed", **extra: object) -> None:
        with self.log.open("a") as log:
            log.write(json.dumps({"message": message, "message_id": message_id, **extra}) + "\n")

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.watchdog.check()


def test_outstanding_without_deliveries_is_reported_once_and_recovery_too(tmp_path: Path) -> None:
    world = World(tmp_path)
    assert world.client.created == [f"projects/p/subscriptions/{WATCHDOG_SUBSCRIPTION}"]
    world.publish("1", "2")
    world.tick(1)
    world.tick(8)
    assert world.lines == []  # 8 s quiet: under the threshold
    world.tick(2)
    world.tick(5)
    [stalled] = world.lines
    assert "STALLED: 2 message(s) outstanding" in stalled and "oldest 1" in stalled
    world.deliver("1")
    world.tick(1)
    assert world.lines[1] == "watchdog: push loop delivering again (1 outstanding)"
    world.deliver("2")
    world.tick(30)
    assert len(world.lines) == 2 and world.watchdog.outstanding == {}


def test_an_idle_stack_and_a_failing_but_delivering_loop_are_not_stalls(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.tick(100)  # nothing published
    world.publish("1")
    for _ in range(10):  # redelivered every 5 s, failing each time: the loop is alive
        world.deliver("1", "event_failed", transient=True)
        world.tick(5)
    assert world.lines == []
    world.deliver("1", "event_failed", transient=False)  # parked on the dead-letter topic
    world.tick(60)
    assert world.lines == [] and world.watchdog.outstanding == {}


def test_partial_and_non_json_log_lines_are_skipped_until_complete(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.publish("1")
    world.tick(1)
    with world.log.open("a") as log:
        log.write("[2026-12-02 17:00:00] ERROR in app: traceback\n")
        log.write('{"message": "event_processed", "message_id": "1"')  # no newline yet
    world.tick(1)
    assert world.watchdog.outstanding == {"1": 1001.0}
    with world.log.open("a") as log:
        log.write("}\n")
    world.tick(1)
    assert world.watchdog.outstanding == {}
