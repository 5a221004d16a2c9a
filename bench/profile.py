"""Profile the hot paths behind the bench's targets.

    python -m bench.profile subscriber   # pyinstrument, in-process, wall time
    python -m bench.profile webhook      # py-spy --gil on the functions-framework worker

`subscriber` runs Subscriber.handle sequentially over fresh customers' stories (wall
time, so Firestore and Pub/Sub round trips show). `webhook` saturates our webhook as
scenario 2 does and samples only threads holding the GIL, i.e. where the worker's one
usable core goes. Both write to bench/results/profile_<name>.txt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench import subscriber_bench, webhook_bench
from bench.session import SUBSCRIBER_PROJECT, WEBHOOK_PROJECT, topics_only
from infra.local.emulators import start_emulators
from infra.local.stack import free_port, start_function
from infra.local.topology import provision

RESULTS = Path(__file__).with_name("results")
_LINE = re.compile(r":\d+\)$")
SECRET = "whsec_benchmarkprofile"


def subscriber() -> str:
    from pyinstrument import Profiler

    provision(SUBSCRIBER_PROJECT, topics_only(SUBSCRIBER_PROJECT))
    with subscriber_bench.quiet_logs():
        subscriber_bench.warm_up(SUBSCRIBER_PROJECT)
        tag = uuid.uuid4().hex[:6]
        handler = subscriber_bench.make_subscriber(f"bench-prof-{tag}", SUBSCRIBER_PROJECT)
        messages = [
            subscriber_bench.message_of(event)
            for story in subscriber_bench.stories(40, tag)
            for event in story
        ]
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for message in messages:
            handler.handle(message)
        profiler.stop()
    text: str = profiler.output_text(unicode=False, color=False, show_all=False)
    return text


def webhook(workdir: Path, seconds: int = 8) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    provision(WEBHOOK_PROJECT, topics_only(WEBHOOK_PROJECT))
    env = {
        "GOOGLE_CLOUD_PROJECT": WEBHOOK_PROJECT,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "PUBSUB_EMULATOR_HOST": os.environ["PUBSUB_EMULATOR_HOST"],
    }
    port = free_port()
    running = start_function("stripe_webhook", port, env, log_path=workdir / "webhook.log")
    raw = workdir / "webhook.spy"
    try:
        server = webhook_bench.Server("ours", port, running.proc.pid)
        webhook_bench.throughput([server], 10, 300, 16, SECRET)
        pid, duration = str(running.proc.pid), str(seconds)
        sampler = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                pid,
                "--subprocesses",
                "--gil",
                "-d",
                duration,
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)
        result = webhook_bench.throughput([server], 10, 2500, 16, SECRET)[server.name]
        sampler.wait(timeout=seconds + 30)
    finally:
        running.stop()
    head = (
        f"py-spy --gil on our webhook at saturation: {result['requests_per_second']:.0f} req/s,"
        f" {result['cpu_ms_per_request']:.2f} ms CPU/request (10 KB events, 16 clients)\n"
    )
    return head + summarize_folded(raw.read_text())


def summarize_folded(folded: str, top: int = 40) -> str:
    """Inclusive and self shares per frame from py-spy's raw (folded) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        # Group by function (drop line numbers) so one function is one row.
        frames = [_LINE.sub(")", f) for f in stack.split(";") if not f.startswith("process ")]
        if frames:
            own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples\n"
    lines = [f"{total} samples holding the GIL", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    which = args[0] if args else "subscriber"
    if which not in ("subscriber", "webhook"):
        print(__doc__)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with start_emulators(log_dir=workdir, reuse_env=False) as emulators:
        os.environ.update(emulators.env())
        text = subscriber() if which == "subscriber" else webhook(workdir)
    out = RESULTS / f"profile_{which}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text, file=sys.__stdout__)
    print(f"written to {out}", file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
