"""`make soak`: many simulator stories through the pure domain, in order and shuffled with
duplicates and late deliveries; prints agreement per story kind and every disagreement.

    .venv/bin/python -m tests.support.soak --stories 10000 [--seed 0]

Exit status 1 if any customer disagrees with Stripe (the seed in each line reproduces it).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time

from statemachine.decision import Policy
from tests.support.differential import PureDomain, Report, run, world

SHAPES = ("current", "2020-08-27", "pre_prices")
AFTER_RETRIES = ("cancel", "unpaid", "past_due")
PER_WORLD = 15  # one story of each kind


def soak(stories: int, seed: int) -> Report:
    policy = Policy()
    total = Report()
    combos = itertools.cycle(itertools.product(SHAPES, AFTER_RETRIES, (False, True)))
    for n, (shape, after, shuffled) in zip(range(0, stories, PER_WORLD), combos, strict=False):
        w = world(seed + n, PER_WORLD, shape=shape, after_retries=after)
        total.merge(run(w, PureDomain(policy), policy, shuffled=shuffled, rng=random.Random(n)))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.soak")
    parser.add_argument("--stories", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = soak(args.stories, args.seed)
    print(report.table())
    problems = report.disagreements + report.instant_disagreements
    print(
        f"{sum(report.stories.values())} stories in {time.perf_counter() - started:.0f} s: "
        f"{len(report.disagreements)} end-state and {len(report.instant_disagreements)} "
        "in-order instant disagreements"
    )
    for line in problems[:50]:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
