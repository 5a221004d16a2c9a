"""The bench's report logic: percentiles, ratio verdicts and the table built from results."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bench.report import build_rows, markdown, write
from bench.stats import Ratio, markdown_table, missed, percentile, summarize_ms


def _side(p50: float, p99: float, cpu: float) -> dict[str, float]:
    return {"n": 10.0, "p50_ms": p50, "p99_ms": p99, "cpu_ms_per_request": cpu, "errors": 0.0}


def _results() -> dict[str, object]:
    timing = {"n": 40.0, "p50_ms": 20.0, "p95_ms": 30.0, "mean_ms": 21.0}
    return {
        "meta": {"started_at": "t", "cpus": 2, "wall_seconds": 5},
        "webhook_ack": {
            "60": {"ours": _side(2.0, 4.0, 1.0), "inline": _side(30.0, 50.0, 9.0)},
            "1": {"ours": _side(1.0, 2.0, 0.5), "inline": _side(10.0, 30.0, 3.0)},
        },
        "webhook_throughput": {
            "bare": {
                "requests_per_second": 1000.0,
                "concurrency": 8.0,
                "p50_ms": 1.0,
                "p99_ms": 3.0,
                "cpu_ms_per_request": 0.4,
                "errors": 0.0,
            },
            "ours": {
                "requests_per_second": 400.0,
                "concurrency": 8.0,
                "p50_ms": 4.0,
                "p99_ms": 9.0,
                "cpu_ms_per_request": 1.4,
                "errors": 0.0,
            },
        },
        "subscriber": {
            "ours_eps": 90.0,
            "raw_eps": 150.0,
            "apply_only_eps": 140.0,
            "events": 100,
            "customers": 10,
            "workers": 4,
            "rounds": 1,
        },
        "scaling": {
            "small_history": timing,
            "large_history": {**timing, "p50_ms": 22.0},
            "few_customers": timing,
            "many_customers": {**timing, "p50_ms": 30.0},
        },
    }


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0
    assert math.isclose(percentile(list(map(float, range(101))), 99), 99.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize_converts_seconds_to_ms() -> None:
    summary = summarize_ms([0.001, 0.003])
    assert summary["p50_ms"] == 2.0
    assert summary["max_ms"] == 3.0
    assert summary["n"] == 2.0


def test_ratio_verdict_follows_direction() -> None:
    assert Ratio("s", "m", 5.0, 10.0, "x", target=0.5).met is True
    assert Ratio("s", "m", 4.9, 10.0, "x", target=0.5).met is False
    assert Ratio("s", "m", 14.0, 10.0, "x", target=1.3, direction="max").met is False
    assert Ratio("s", "m", 1.0, 0.0, "x").as_dict()["ratio"] is None


def test_rows_judge_each_target_from_the_results() -> None:
    rows = {(r.scenario, r.metric): r for r in build_rows(_results())}
    ack60 = rows[("1 webhook ack 60 KB", "ack p99: inline / ours")]
    assert ack60.ratio == 12.5 and ack60.met is True
    # Only the 60 KB p99 carries the 10x target.
    assert rows[("1 webhook ack 1 KB", "ack p99: inline / ours")].target is None
    assert rows[("2 webhook throughput", "ours / bare framework")].ratio == 0.4
    assert rows[("3 subscriber throughput", "Subscriber.handle / raw txn")].met is True
    assert rows[("5 scaling", "history 10,000 / 10 (p50)")].met is True
    many = rows[("5 scaling", "customers 10,000 / 10 (p50)")]
    assert many.ratio == 1.5
    assert {(r.scenario, r.metric) for r in missed(list(rows.values()))} == {
        ("2 webhook throughput", "ours / bare framework"),
        ("5 scaling", "customers 10,000 / 10 (p50)"),
    }
    # Sizes sort numerically, not as strings.
    assert next(iter(rows))[0] == "1 webhook ack 1 KB"


def test_markdown_and_json_carry_the_same_verdicts(tmp_path: object) -> None:
    results = _results()
    rows = build_rows(results)
    table = markdown_table(rows)
    assert (
        "| 2 webhook throughput | ours / bare framework | 400 | 1000 | req/s | 0.40 | MISSED"
        in (table)
    )
    assert "met (>= 10)" in table
    text = markdown(results, rows)
    assert "### 5. Scaling" in text and "| many customers | 40 | 30.00 |" in text
    json_path, md_path = write(results, rows, tmp_path / "out")  # type: ignore[operator]
    saved = json.loads(json_path.read_text())
    assert [r["met"] for r in saved["ratios"]] == [r.met for r in rows]
    assert md_path.read_text() == text


def test_floor_and_machine_cpu_rows_explain_the_webhook_ratios() -> None:
    results: dict[str, Any] = _results()
    ack = results["webhook_ack"]["60"]
    ack["ours"].update(publish_p50_ms=1.5, publish_p99_ms=2.5)
    tput = results["webhook_throughput"]
    tput["bare"].update(machine_cpu_ms_per_request=1.5)
    tput["ours"].update(machine_cpu_ms_per_request=4.5, cpu_ms_per_request_pubsub_emulator=1.5)
    rows = {(r.scenario, r.metric): r for r in build_rows(results)}

    floor = rows[("1 webhook ack 60 KB", "ack p99: inline / the publish inside ours")]
    assert (floor.numerator, floor.denominator, floor.target) == (50.0, 2.5, None)
    machine = rows[("2 webhook throughput", "machine CPU/request: bare / ours")]
    assert machine.ratio == pytest.approx(1.5 / 4.5)
    off_machine = rows[
        (
            "2 webhook throughput",
            "machine CPU/request: bare / ours without the Pub/Sub emulator's share",
        )
    ]
    assert off_machine.denominator == pytest.approx(3.0)
    assert "derived" in off_machine.note
    table = markdown(results, build_rows(results))
    assert "| 60 KB | ours | 10 | 2.00 | 4.00 | 1.50 / 2.50 |" in table
