"""The release gate's performance check fails on regressions and only on them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from bench import gate

BASELINE: dict[str, Any] = json.loads(gate.BASELINE.read_text())


def _with(scenario: str, metric: str, ratio: float) -> dict[str, Any]:
    changed = copy.deepcopy(BASELINE)
    for row in changed["ratios"]:
        if (row["scenario"], row["metric"]) == (scenario, metric):
            row["ratio"] = ratio
    return changed


def test_the_baseline_passes_against_itself() -> None:
    assert BASELINE["ratios"], "the committed bench results hold ratios"
    assert gate.regressions(BASELINE, BASELINE, 0.25) == []


def test_a_ratio_that_fell_by_more_than_the_tolerance_fails() -> None:
    row = next(r for r in BASELINE["ratios"] if r["direction"] == "min" and r["ratio"] > 0)
    slower = _with(row["scenario"], row["metric"], row["ratio"] * 0.5)
    findings = gate.regressions(BASELINE, slower, 0.25)
    assert [(f.scenario, f.metric) for f in findings] == [(row["scenario"], row["metric"])]
    noisy = _with(row["scenario"], row["metric"], row["ratio"] * 0.9)
    assert gate.regressions(BASELINE, noisy, 0.25) == []


def test_a_measurement_that_disappeared_fails(tmp_path: Path) -> None:
    current = copy.deepcopy(BASELINE)
    dropped = current["ratios"].pop()
    findings = gate.regressions(BASELINE, current, 0.25)
    assert [(f.metric, f.why) for f in findings] == [(dropped["metric"], "no longer measured")]
    (tmp_path / "current.json").write_text(json.dumps(current))
    argv = ["--current", str(tmp_path / "current.json"), "--baseline", str(gate.BASELINE)]
    assert gate.main(argv) == 1
    (tmp_path / "same.json").write_text(json.dumps(BASELINE))
    assert gate.main(["--current", str(tmp_path / "same.json")]) == 0


def test_missed_targets_fail_only_when_asked() -> None:
    missed = copy.deepcopy(BASELINE)
    row = next(r for r in missed["ratios"] if r["met"] is True)
    row["met"] = False
    assert gate.regressions(BASELINE, missed, 0.25) == []
    before = gate.regressions(BASELINE, BASELINE, 0.25, targets=True)
    after = gate.regressions(BASELINE, missed, 0.25, targets=True)
    assert [(f.metric, f.why) for f in after if f not in before] == [
        (row["metric"], "misses its target")
    ]
