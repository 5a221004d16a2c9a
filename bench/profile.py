"""Profile the subscriber's hot path with pyinstrument: `python -m bench.profile`.

Runs Subscriber.handle sequentially over fresh customers' event stories on the
emulators and writes the call tree (wall time, so network waits show) to
bench/results/profile_subscriber.txt. This is the profile the README's performance
section refers to when a target is missed.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from pyinstrument import Profiler

from bench import subscriber_bench
from bench.session import SUBSCRIBER_PROJECT, topics_only
from infra.local.emulators import start_emulators
from infra.local.topology import provision

OUT = Path(__file__).with_name("results") / "profile_subscriber.txt"


def main() -> int:
    with start_emulators(log_dir=Path(tempfile.mkdtemp(prefix="bench-profile-"))) as emulators:
        os.environ.update(emulators.env())
        provision(SUBSCRIBER_PROJECT, topics_only(SUBSCRIBER_PROJECT))
        with subscriber_bench.quiet_logs():
            subscriber_bench.warm_up(SUBSCRIBER_PROJECT)
            tag = uuid.uuid4().hex[:6]
            subscriber = subscriber_bench.make_subscriber(f"bench-prof-{tag}", SUBSCRIBER_PROJECT)
            messages = [
                subscriber_bench.message_of(event)
                for story in subscriber_bench.stories(40, tag)
                for event in story
            ]
            profiler = Profiler(interval=0.0005)
            profiler.start()
            for message in messages:
                subscriber.handle(message)
            profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
