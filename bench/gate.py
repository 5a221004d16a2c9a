"""The release gate on performance: no ratio may fall well below the accepted baseline.

    python -m bench.gate --current OUT/latest.json [--baseline bench/results/latest.json]

Ratios, not absolute figures, because CI machines differ; each is compared with the same
ratio in the committed baseline (the run the team accepted last) and fails the gate when
it moved the wrong way by more than `--tolerance` (default 0.25: ratios measured on two
noisy cores scatter by about 0.05 between runs). `--targets` also fails on any ratio that
misses its absolute target. Exit 0: pass; 1: regression; 2: unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).with_name("results") / "latest.json"


@dataclass(frozen=True)
class Finding:
    scenario: str
    metric: str
    baseline: float
    current: float
    why: str

    def line(self) -> str:
        figures = f"{self.current:.2f} vs {self.baseline:.2f}"
        return f"{self.scenario} / {self.metric}: {figures} ({self.why})"


def _rows(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scenario"], r["metric"]): r for r in results.get("ratios", [])}


def regressions(
    baseline: dict[str, Any], current: dict[str, Any], tolerance: float, targets: bool = False
) -> list[Finding]:
    found: list[Finding] = []
    old = _rows(baseline)
    for key, row in _rows(current).items():
        ratio = float(row["ratio"])
        if targets and row.get("met") is False:
            found.append(Finding(*key, float(row["target"]), ratio, "misses its target"))
        if key not in old:
            continue  # a new measurement: nothing to regress from yet
        before = float(old[key]["ratio"])
        worse = (
            ratio < before * (1 - tolerance)
            if row["direction"] == "min"
            else ratio > before * (1 + tolerance)
        )
        if worse:
            found.append(
                Finding(*key, before, ratio, f"worse than the baseline by over {tolerance:.0%}")
            )
    missing = sorted(set(old) - set(_rows(current)))
    found.extend(
        Finding(*key, float(old[key]["ratio"]), float("nan"), "no longer measured")
        for key in missing
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__)
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--tolerance", type=float, default=0.25)
    parser.add_argument("--targets", action="store_true", help="also fail on missed targets")
    args = parser.parse_args(argv)
    try:
        baseline = json.loads(args.baseline.read_text())
        current = json.loads(args.current.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench gate: cannot read results: {exc}", file=sys.stderr)
        return 2
    if current.get("meta", {}).get("quick"):
        print("bench gate: refusing a --quick run (its counts are too small to compare)")
        return 2
    found = regressions(baseline, current, args.tolerance, args.targets)
    for finding in found:
        print(f"REGRESSION {finding.line()}")
    compared = len(set(_rows(baseline)) & set(_rows(current)))
    print(f"bench gate: {compared} ratios compared, {len(found)} findings")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
