"""PNG plots of one bench run, read from the same dict that becomes latest.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on the bench machine
import matplotlib.pyplot as plt

from bench.stats import percentile

OURS, BASE, FLOOR = "#1f77b4", "#d62728", "#7f7f7f"


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def webhook_ack(results: dict[str, Any], out: Path) -> Path:
    sizes = sorted(int(kb) for kb in results)
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, color in (("ours", OURS), ("inline", BASE)):
        for pct, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            lat.plot(
                sizes,
                [results[str(kb)][name][pct] for kb in sizes],
                style,
                color=color,
                label=f"{name} {pct[:3]}",
            )
        cpu.plot(
            sizes,
            [results[str(kb)][name]["cpu_ms_per_request"] for kb in sizes],
            "-o",
            color=color,
            label=name,
        )
    for ax, title, ylabel in (
        (lat, "Webhook ack latency", "ms (log)"),
        (cpu, "Webhook server CPU per request", "ms CPU (log)"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{kb} KB" for kb in sizes])
        ax.set_xlabel("event payload size")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out / "webhook_ack.png")


def bars(title: str, ylabel: str, values: dict[str, float], colors: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(values)
    heights = [values[n] for n in names]
    ax.bar(names, heights, color=colors[: len(names)])
    for x, height in enumerate(heights):
        ax.annotate(f"{height:.0f}", (x, height), ha="center", va="bottom", fontsize=9)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def e2e_cdf(latencies_ms: list[float], offered: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ordered = sorted(latencies_ms)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], color=OURS)
    for q in (50, 95, 99):
        # The same interpolated percentile as the table, so plot and table agree.
        value = percentile(ordered, q)
        ax.axvline(value, color=FLOOR, linestyle=":", linewidth=1)
        ax.annotate(f" p{q} {value:.0f} ms", (value, q / 100 - 0.06), fontsize=8)
    ax.set_xlabel("webhook 200 -> entitlement-changed received (ms)")
    ax.set_ylabel("fraction of events")
    ax.set_title(f"End-to-end latency at {offered:g} events/s offered")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def scaling(results: dict[str, dict[str, float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = ["10 history", "10,000 history", "10 customers", "10,000 customers"]
    keys = ["small_history", "large_history", "few_customers", "many_customers"]
    p50 = [results[k]["p50_ms"] for k in keys]
    p95 = [results[k]["p95_ms"] for k in keys]
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, color=OURS, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, color=FLOOR, label="p95")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("ms per event (Subscriber.handle)")
    ax.set_title("Per-event processing time as the store grows")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)
