"""`make bench`: run every scenario in one go, write bench/results/, print the table.

    .venv/bin/python -m bench.run            # the full run (about 4-6 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick    # small counts, to check the harness works

One run starts its own emulators and servers on loopback, so the ratios compare
handlers measured minutes apart on the same machine state.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import plots, proc, report
from bench.stats import missed

RESULTS = Path(__file__).with_name("results")
SECRET = "whsec_benchmarksecret"


@dataclass(frozen=True)
class Counts:
    ack_requests: dict[int, int]
    throughput_requests: int
    throughput_inline_requests: int
    concurrency: int
    subscriber_customers: int
    subscriber_rounds: int
    workers: int
    e2e_rate: float
    e2e_seconds: float
    scaling_small: int
    scaling_large: int
    scaling_events: int
    read_api_rate: float
    read_api_seconds: float


FULL = Counts(
    ack_requests={1: 400, 10: 400, 60: 300, 500: 80},
    throughput_requests=2000,
    throughput_inline_requests=500,
    concurrency=16,
    subscriber_customers=150,
    subscriber_rounds=2,
    workers=8,
    e2e_rate=10.0,
    e2e_seconds=30.0,
    scaling_small=10,
    scaling_large=10_000,
    scaling_events=120,
    read_api_rate=200.0,
    read_api_seconds=15.0,
)
QUICK = Counts(
    ack_requests={1: 40, 10: 40, 60: 40, 500: 8},
    throughput_requests=200,
    throughput_inline_requests=80,
    concurrency=8,
    subscriber_customers=20,
    subscriber_rounds=1,
    workers=4,
    e2e_rate=5.0,
    e2e_seconds=5.0,
    scaling_small=10,
    scaling_large=500,
    scaling_events=20,
    read_api_rate=50.0,
    read_api_seconds=3.0,
)


def log(message: str) -> None:
    # sys.__stdout__: the in-process subscriber runs with sys.stdout pointed at a null sink.
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.__stdout__, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (harness check)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL

    from bench.session import BenchSession  # heavy imports only once we run

    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "quick": args.quick,
            "counts": asdict(counts),
        }
    }
    with BenchSession(SECRET, Path(tempfile.mkdtemp(prefix="bench-")), log) as session:
        results.update(session.run_all(counts))
        results["peak_rss_mb"] = {
            **session.peak_rss(),
            "bench process (subscriber in-process)": proc.peak_rss_mb(os.getpid(), tree=False),
        }
    results["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)

    rows = report.build_rows(results)
    json_path, md_path = report.write(results, rows, args.out)
    _plot(results, args.out)
    print()
    print(md_path.read_text())
    log(f"wrote {json_path}, {md_path} and PNGs in {args.out}")
    for row in missed(rows):
        log(f"target missed: {row.scenario} {row.metric} = {row.ratio:.2f} (target {row.target})")
    return 0


def _plot(results: dict[str, Any], out: Path) -> None:
    if "webhook_ack" in results:
        plots.webhook_ack(results["webhook_ack"], out)
    tput = results.get("webhook_throughput", {})
    if tput:
        plots.bars(
            "Webhook throughput at saturation",
            "requests/s",
            {name: s["requests_per_second"] for name, s in tput.items()},
            [plots.FLOOR, "#9ecae1", plots.OURS, plots.BASE],
            out / "webhook_throughput.png",
        )
    sub = results.get("subscriber")
    if sub:
        plots.bars(
            "Subscriber throughput",
            "events/s",
            {
                "raw transactions": sub["raw_eps"],
                "repository.apply": sub["apply_only_eps"],
                "Subscriber.handle": sub["ours_eps"],
            },
            [plots.FLOOR, "#9ecae1", plots.OURS],
            out / "subscriber_throughput.png",
        )
    e2e = results.get("e2e")
    if e2e and e2e.get("latencies_ms"):
        plots.e2e_cdf(e2e["latencies_ms"], e2e["offered_per_second"], out / "e2e_latency.png")
    if "scaling" in results:
        plots.scaling(results["scaling"], out / "scaling.png")


if __name__ == "__main__":
    raise SystemExit(main())
