"""Summaries and the result table: pure functions, so the report logic is unit-tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Direction = Literal["min", "max"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Latency samples in seconds -> p50/p95/p99/mean in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": float(len(ms)),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "max_ms": round(max(ms), 3),
    }


@dataclass(frozen=True)
class Ratio:
    """One comparison: `ratio = numerator / denominator`, judged against `target`.

    `direction` says which side of the target passes: "min" means the ratio must be at
    least the target (throughput, speed-up), "max" at most (scaling growth).
    """

    scenario: str
    metric: str
    numerator: float
    denominator: float
    unit: str
    target: float | None = None
    direction: Direction = "min"
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.denominator == 0:
            return math.inf
        return self.numerator / self.denominator

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.direction == "min":
            return self.ratio >= self.target
        return self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = round(self.ratio, 3) if math.isfinite(self.ratio) else None
        data["met"] = self.met
        return data


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(row: Ratio) -> str:
    if row.met is None:
        return "-"
    op = ">=" if row.direction == "min" else "<="
    return f"{'met' if row.met else 'MISSED'} ({op} {row.target:g})"


def markdown_table(rows: Sequence[Ratio]) -> str:
    lines = [
        "| scenario | metric | numerator | denominator | unit | ratio | target |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.metric} | {_fmt(row.numerator)} | "
            f"{_fmt(row.denominator)} | {row.unit} | {_fmt(row.ratio)} | {_verdict(row)} |"
        )
    return "\n".join(lines)


def missed(rows: Sequence[Ratio]) -> list[Ratio]:
    return [row for row in rows if row.met is False]
