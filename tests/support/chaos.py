"""`make chaos`: a bounded, repeatable fault suite on the emulators (issue 17).

A burst of signed webhooks (every customer plays one generator scenario in order, with
Stripe-style duplicates mixed in after their originals) goes through the real stack
while faults are injected on a fixed schedule: SIGKILL of a worker and of the master of
both functions (infra/local/supervise.py restarts them), and the Firestore emulator
frozen with SIGSTOP/SIGCONT. The sender behaves like Stripe: anything but a 200 is
retried, so an event counts as acked only once the webhook said 200.

Then it checks, and prints the counts of: acked events lost (no processed marker), events
applied twice (one event id twice in a customer's history), customers whose
entitlement-changed stream is not versions 1..n (or a version republished with other
bytes), customers whose final record differs from the in-order outcome, and dead letters.
Every count must be 0. `python -m tests.support.chaos [--quick]`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import secrets
import signal
import sys
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from functions.adapters.firestore_repository import FirestoreRepository
from infra.local.demo import expected_outcome, outcome, post
from infra.local.emulators import Emulators, start_emulators
from infra.local.observe import drain
from infra.local.scenarios import SCENARIOS, Scenario, build
from infra.local.stack import SUBSCRIBER_TARGET, WEBHOOK_TARGET, LocalStack
from infra.local.supervise import Supervisor, children
from infra.local.topology import OBSERVER_ENTITLEMENTS_SUBSCRIPTION

Event = dict[str, Any]
Say = Callable[[str], None]
# The emulator retries a failed push every second, ignoring the retry policy's 10-600 s
# backoff, so a 20 s stall would burn production's 5 attempts in seconds. The budget is
# widened here (policy and subscriber agree) so the suite measures loss, not the
# emulator's retry pace; any dead letter still counts against the run.
CHAOS_DELIVERY_ATTEMPTS = 100
SEND_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the burst starts
    kind: str  # "worker" | "master" | "stall"
    target: str  # a function target, or "firestore"
    seconds: float = 0.0


@dataclass(frozen=True)
class Plan:
    customers: int
    events: int
    faults: tuple[Fault, ...]
    # The burst is paced over this long so every fault lands while events are still
    # arriving and being processed (a fault after the work is done would prove nothing).
    spread_seconds: float = 40.0
    seed: int = 20261202
    settle_seconds: float = 300.0


FULL = Plan(
    customers=200,
    events=2000,
    faults=(
        Fault(2, "worker", SUBSCRIBER_TARGET),
        Fault(5, "worker", WEBHOOK_TARGET),
        Fault(9, "master", SUBSCRIBER_TARGET),
        Fault(13, "master", WEBHOOK_TARGET),
        Fault(18, "stall", "firestore", 20),
    ),
)
QUICK = Plan(
    customers=20,
    events=200,
    faults=(Fault(1, "worker", SUBSCRIBER_TARGET), Fault(3, "stall", "firestore", 5)),
    spread_seconds=8.0,
    settle_seconds=120.0,
)


@dataclass
class Counts:
    customers: int = 0
    unique_events: int = 0
    duplicates: int = 0
    posts: int = 0
    post_retries: int = 0
    acked: int = 0
    not_acked: int = 0
    lost: int = 0
    applied_twice: int = 0
    version_gaps: int = 0
    record_mismatches: int = 0
    dead_letters: int = 0
    faults: list[str] = field(default_factory=list)
    restarts: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        bad = {
            "events never acked by the webhook": self.not_acked,
            "acked events lost": self.lost,
            "events applied twice": self.applied_twice,
            "customers without versions 1..n": self.version_gaps,
            "records unlike the in-order outcome": self.record_mismatches,
            "dead letters": self.dead_letters,
        }
        return [f"{n} {what}" for what, n in bad.items() if n]

    def table(self) -> str:
        rows = [
            ("customers", self.customers),
            (
                "events posted (unique + duplicates)",
                f"{self.posts} ({self.unique_events} + {self.duplicates})",
            ),
            ("webhook retries after a fault", self.post_retries),
            ("acked (200) unique events", self.acked),
            ("acked events lost", self.lost),
            ("events applied twice", self.applied_twice),
            ("customers without versions 1..n", self.version_gaps),
            ("records unlike the in-order outcome", self.record_mismatches),
            ("dead letters", self.dead_letters),
            ("faults injected", len(self.faults)),
            ("function restarts by the supervisor", self.restarts),
            ("duration", f"{self.seconds:.0f} s"),
        ]
        return "\n".join(f"{name:40} {value}" for name, value in rows)


def deliveries(plan: Plan) -> tuple[list[Scenario], dict[str, list[Event]], int]:
    """Each customer's events in order, with duplicates placed after their originals."""
    rng = random.Random(plan.seed)
    names = sorted(SCENARIOS)
    played = [
        build(
            names[i % len(names)], customer_id=f"cus_chaos{i:04d}", account_id=f"acct_chaos{i:04d}"
        )
        for i in range(plan.customers)
    ]
    sequences = {s.customer_id: list(s.events) for s in played}
    unique = sum(len(events) for events in sequences.values())
    for _ in range(max(0, plan.events - unique)):
        events = sequences[rng.choice(played).customer_id]
        original = rng.randrange(len(events))
        events.insert(rng.randrange(original + 1, len(events) + 1), events[original])
    return played, sequences, unique


def send(
    url: str,
    secret: str,
    sequences: Mapping[str, Sequence[Event]],
    counts: Counts,
    spread_seconds: float,
) -> set[str]:
    """Like Stripe: per customer in order, customers in parallel, retried until a 200;
    first attempts paced evenly over `spread_seconds`."""
    acked: set[str] = set()
    lock = threading.Lock()
    slots = itertools.count()
    interval = spread_seconds / max(1, sum(len(s) for s in sequences.values()))
    began = time.monotonic()

    def one(events: Sequence[Event]) -> None:
        for event in events:
            with lock:
                slot = next(slots)
            time.sleep(max(0.0, began + slot * interval - time.monotonic()))
            deadline = time.monotonic() + SEND_TIMEOUT_SECONDS
            while True:
                try:
                    status = post(url, secret, event)
                except (urllib.error.URLError, OSError) as exc:
                    status = getattr(exc, "code", 0) or 0
                with lock:
                    counts.posts += 1
                if status == 200:
                    with lock:
                        acked.add(event["id"])
                        counts.acked = len(acked)
                    break
                with lock:
                    counts.post_retries += 1
                if time.monotonic() > deadline:
                    break  # never acked: counted as such, not as lost
                time.sleep(0.3)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, sequences.values()))
    return acked


def inject(
    stack: LocalStack, emulators: Emulators, faults: Sequence[Fault], counts: Counts, say: Say
) -> threading.Thread:
    started = time.monotonic()

    def master(target: str) -> int:
        return next(f.proc.pid for f in stack.functions if f.target == target)

    def run() -> None:
        for fault in faults:
            time.sleep(max(0.0, started + fault.at - time.monotonic()))
            if fault.kind == "stall":
                say(f"chaos: {fault.target} emulator stalled (SIGSTOP) for {fault.seconds:.0f} s")
                with emulators.stalled(fault.target):
                    time.sleep(fault.seconds)
                say(f"chaos: {fault.target} emulator resumed (SIGCONT)")
            elif fault.kind == "worker":
                worker = min(children(master(fault.target)), default=None)
                if worker is None:
                    say(f"chaos: no worker of {fault.target} to kill")
                    continue
                say(f"chaos: SIGKILL {fault.target} worker {worker}")
                os.kill(worker, signal.SIGKILL)
            else:
                pid = master(fault.target)
                say(f"chaos: SIGKILL {fault.target} master {pid}")
                os.kill(pid, signal.SIGKILL)
            counts.faults.append(f"{fault.kind} {fault.target}")
            say(f"chaos: {counts.acked} of {counts.unique_events} events acked so far")

    thread = threading.Thread(target=run, name="chaos-faults", daemon=True)
    thread.start()
    return thread


def settle(repo: FirestoreRepository, acked: set[str], timeout: float) -> set[str]:
    """Wait until every acked event is processed; returns those that never were."""
    remaining = set(acked)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        remaining = {e for e in remaining if not repo.is_processed(e)}
        if remaining:
            time.sleep(1.0)
    return remaining


def check(
    stack: LocalStack, played: list[Scenario], acked: set[str], plan: Plan, counts: Counts
) -> None:
    repo = FirestoreRepository(stack.project)
    lost = settle(repo, acked, plan.settle_seconds)
    counts.lost = len(lost)
    counts.examples += [f"lost {e}" for e in sorted(lost)[:3]]
    streams: dict[str, dict[int, bytes]] = {}
    republished_differently: set[str] = set()
    for message in drain(stack.project, OBSERVER_ENTITLEMENTS_SUBSCRIPTION, quiet_seconds=3.0):
        customer = message.attributes.get("customer_id", "")
        first = streams.setdefault(customer, {}).setdefault(
            int(message.attributes["version"]), message.data
        )
        if first != message.data:
            republished_differently.add(customer)
    for scenario in played:
        record = repo.get_record(scenario.customer_id)
        ids = Counter(entry.event_id for entry in repo.history(scenario.customer_id, limit=500))
        twice = [event_id for event_id, n in ids.items() if n > 1]
        counts.applied_twice += len(twice)
        counts.examples += [f"applied twice {e}" for e in twice[:1]]
        versions = sorted(streams.get(scenario.customer_id, {}))
        want = list(range(1, record.version + 1)) if record else []
        if versions != want or scenario.customer_id in republished_differently:
            counts.version_gaps += 1
            counts.examples.append(f"{scenario.customer_id} versions {versions} != 1..{len(want)}")
        if outcome(record) != expected_outcome(scenario):
            counts.record_mismatches += 1
            counts.examples.append(
                f"{scenario.customer_id} {outcome(record)} != {expected_outcome(scenario)}"
            )
    counts.dead_letters = len(
        drain(
            stack.project,
            stack.env.get("DEAD_LETTER_SUBSCRIPTION", "stripe-events-dead-letter-ops"),
            quiet_seconds=1.0,
        )
    )


def run(plan: Plan, emulators: Emulators, say: Say = print) -> Counts:
    counts = Counts(customers=plan.customers)
    secret = f"whsec_chaos{secrets.token_hex(12)}"
    played, sequences, counts.unique_events = deliveries(plan)
    counts.duplicates = sum(len(s) for s in sequences.values()) - counts.unique_events
    env = {
        "STRIPE_WEBHOOK_SECRET": secret,
        "LOG_LEVEL": "WARNING",
        "MAX_DELIVERY_ATTEMPTS": str(CHAOS_DELIVERY_ATTEMPTS),
    }
    started = time.monotonic()
    with LocalStack(
        env=env, emulators=emulators, max_delivery_attempts=CHAOS_DELIVERY_ATTEMPTS
    ) as stack:
        supervisor = Supervisor(stack.functions, say)
        stop = threading.Event()

        def supervise() -> None:
            while not stop.wait(0.3):
                supervisor.check()

        watcher = threading.Thread(target=supervise, name="chaos-supervisor", daemon=True)
        watcher.start()
        try:
            total = counts.unique_events + counts.duplicates
            say(f"chaos: posting {total} events for {plan.customers} customers")
            faults = inject(stack, emulators, plan.faults, counts, say)
            acked = send(stack.webhook_url, secret, sequences, counts, plan.spread_seconds)
            faults.join()
            counts.acked = len(acked)
            counts.not_acked = counts.unique_events - counts.acked
            check(stack, played, acked, plan, counts)
        finally:
            stop.set()
            watcher.join()
        counts.restarts = sum(supervisor.restarts.values())
    counts.seconds = time.monotonic() - started
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.chaos")
    parser.add_argument("--quick", action="store_true", help="the slice make test runs")
    plan = QUICK if parser.parse_args(argv).quick else FULL
    # SIGTERM (a timeout, Ctrl-C from a wrapper) must still stop the stack and emulators.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    with start_emulators(reuse_env=False) as emulators:
        os.environ.update(emulators.env())  # this process reads Firestore and Pub/Sub too
        counts = run(
            plan, emulators, lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
        )
    print("\n" + counts.table())
    print(f"total with emulator start-up: {time.monotonic() - began:.0f} s")
    problems = counts.problems()
    for example in counts.examples[:10]:
        print(f"  e.g. {example}")
    print(
        "PASS: nothing lost, nothing applied twice, every stream 1..n, every record as in order"
        if not problems
        else "FAIL: " + "; ".join(problems)
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
