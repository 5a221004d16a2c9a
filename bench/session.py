"""One bench run's processes: emulators, the three webhook servers, then the scenarios."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bench import proc, subscriber_bench, webhook_bench
from bench.webhook_bench import Server
from functions.config import CommonSettings
from infra.local.emulators import Emulators, start_emulators
from infra.local.stack import RunningFunction, free_port, start_function
from infra.local.topology import Topology, desired_topology, provision

if TYPE_CHECKING:
    from bench.run import Counts

# The webhook scenarios publish into a project with the topics but no subscriptions:
# publishing costs the same, and no push endpoint retries in the background meanwhile.
WEBHOOK_PROJECT = "bench-webhook"
SUBSCRIBER_PROJECT = "bench-subscriber"
E2E_PROJECT = "bench-e2e"
READ_PROJECT = "bench-read-api"
# The baselines live in a bench-only source file, served by the same start_function.
BASELINE_SOURCE = Path(__file__).with_name("baseline_app.py")


def topics_only(project: str) -> Topology:
    settings = CommonSettings(google_cloud_project=project)
    full = desired_topology(settings, subscriber_push_endpoint="http://127.0.0.1:9/unused")
    return Topology(topics=full.topics, subscriptions=())


class BenchSession:
    def __init__(self, secret: str, workdir: Path, log: Callable[[str], None]) -> None:
        self.secret = secret
        self.workdir = workdir
        self.log = log
        self.emulators: Emulators | None = None
        self.servers: dict[str, Server] = {}
        self._procs: list[RunningFunction] = []
        self._rss: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> BenchSession:
        self.log("starting the Pub/Sub and Firestore emulators")
        self.emulators = start_emulators(log_dir=self.workdir, reuse_env=False)
        os.environ.update(self.emulators.env())
        for project in (WEBHOOK_PROJECT, SUBSCRIBER_PROJECT):
            provision(project, topics_only(project))
        self.log("starting our webhook and the two baselines on functions-framework")
        self._start_webhooks()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_servers()
        if self.emulators is not None:
            self.emulators.stop()

    def _env(self, project: str) -> dict[str, str]:
        assert self.emulators is not None
        return {
            **self.emulators.env(),
            "GOOGLE_CLOUD_PROJECT": project,
            "STRIPE_WEBHOOK_SECRET": self.secret,
            "LOG_LEVEL": "INFO",
        }

    def _start_webhooks(self) -> None:
        env = self._env(WEBHOOK_PROJECT)
        for name, target, source in (
            ("ours", "stripe_webhook", None),
            ("bare", "bare_ok", BASELINE_SOURCE),
            ("inline", "inline_webhook", BASELINE_SOURCE),
            ("publish_only", "publish_only", BASELINE_SOURCE),
        ):
            port = free_port()
            log_path = self.workdir / f"webhook-{name}.log"
            if source is None:
                running = start_function(target, port, env, log_path=log_path)
            else:
                running = start_function(target, port, env, source=source, log_path=log_path)
            self._procs.append(running)
            self.servers[name] = Server(name, port, running.proc.pid, log_path)

    def stop_servers(self) -> None:
        for name, server in self.servers.items():
            self._rss[f"webhook server: {name}"] = proc.peak_rss_mb(server.pid)
        for running in self._procs:
            running.stop()
        self._procs.clear()
        self.servers.clear()

    def peak_rss(self) -> dict[str, float]:
        if self.emulators is not None:
            for process in self.emulators._processes:
                self._rss[f"{process.name} emulator (java)"] = proc.peak_rss_mb(process.proc.pid)
        return dict(self._rss)

    # --- scenarios ---------------------------------------------------------------------

    def run_all(self, counts: Counts) -> dict[str, Any]:
        results: dict[str, Any] = {}
        ours, inline, bare = self.servers["ours"], self.servers["inline"], self.servers["bare"]
        publish_only = self.servers["publish_only"]
        self.log("warming up the servers and the emulators behind them")
        webhook_bench.warm_up([ours, inline, bare, publish_only], self.secret)
        results["webhook_ack"] = {}
        for kb in webhook_bench.SIZES_KB:
            self.log(f"1. webhook ack at {kb} KB: ours vs inline")
            results["webhook_ack"][str(kb)] = webhook_bench.ack_cost(
                [ours, inline], kb, counts.ack_requests[kb], self.secret
            )
        self.log("2. webhook throughput at saturation: bare, publish-only, ours, inline")
        assert self.emulators is not None
        emulator_pids = {
            f"{process.name}_emulator": process.proc.pid for process in self.emulators._processes
        }
        results["webhook_throughput"] = webhook_bench.throughput(
            [bare, publish_only, ours],
            10,
            counts.throughput_requests,
            counts.concurrency,
            self.secret,
            emulator_pids,
        )
        # Fewer requests: at under a tenth of the others' rate it would dominate the run.
        results["webhook_throughput"].update(
            webhook_bench.throughput(
                [inline],
                10,
                counts.throughput_inline_requests,
                counts.concurrency,
                self.secret,
                emulator_pids,
            )
        )
        self.stop_servers()

        with subscriber_bench.quiet_logs():
            subscriber_bench.warm_up(SUBSCRIBER_PROJECT)
            results["subscriber"] = self._subscriber(counts)
            self.log("5. scaling: history and customer count")
            scaling = subscriber_bench.scaling(
                SUBSCRIBER_PROJECT,
                counts.scaling_small,
                counts.scaling_large,
                counts.scaling_events,
            )
            results["scaling"] = {
                "small_history": scaling.small_history,
                "large_history": scaling.large_history,
                "few_customers": scaling.few_customers,
                "many_customers": scaling.many_customers,
                "seed_seconds": scaling.seed_seconds,
                "sizes": {"small": counts.scaling_small, "large": counts.scaling_large},
            }
        self.log("4. end to end at a fixed offered load")
        results["e2e"] = self._e2e(counts)
        self.log(f"6. read API at {counts.read_api_rate:g} requests/s")
        from bench import read_api_bench

        results["read_api"] = read_api_bench.run(
            self._env(READ_PROJECT), READ_PROJECT, counts.read_api_rate, counts.read_api_seconds
        )
        return results

    def _subscriber(self, counts: Counts) -> dict[str, Any]:
        rounds = []
        for n in range(counts.subscriber_rounds):
            self.log(f"3. subscriber throughput, round {n + 1}/{counts.subscriber_rounds}")
            rounds.append(
                subscriber_bench.subscriber_round(
                    SUBSCRIBER_PROJECT,
                    counts.subscriber_customers,
                    counts.workers,
                    reverse=n % 2 == 1,
                )
            )
        events = sum(r.events for r in rounds)

        def rate(attr: str) -> float:
            # Total events over total time: rounds weigh by how long they took.
            seconds = sum(r.events / float(getattr(r, attr)) for r in rounds)
            return round(events / seconds, 1)

        return {
            "ours_eps": rate("ours_eps"),
            "raw_eps": rate("raw_eps"),
            "apply_only_eps": rate("apply_only_eps"),
            "events": events,
            "customers": counts.subscriber_customers * counts.subscriber_rounds,
            "workers": counts.workers,
            "rounds": counts.subscriber_rounds,
        }

    def _e2e(self, counts: Counts) -> dict[str, Any]:
        from bench import e2e
        from infra.local.stack import SUBSCRIBER_TARGET, main_exports

        assert self.emulators is not None
        if not main_exports(SUBSCRIBER_TARGET):
            self.log(f"4. skipped: main.py does not export {SUBSCRIBER_TARGET}")
            return {"skipped": f"main.py does not export {SUBSCRIBER_TARGET}"}
        result, rss = e2e.run(
            self.emulators, self._env(E2E_PROJECT), E2E_PROJECT, counts.e2e_rate, counts.e2e_seconds
        )
        self._rss.update(rss)
        return result
