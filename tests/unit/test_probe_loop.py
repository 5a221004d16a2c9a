"""make dev's probe loop: what it prints for completions, failures and recoveries."""

from __future__ import annotations

from functions.services.probe import ProbeResult
from infra.local.probe_loop import LocalProbe


class _Never:
    def run(self) -> ProbeResult:
        raise AssertionError("not run in these tests")


def loop(lines: list[str]) -> LocalProbe:
    return LocalProbe("p", "http://x/", "whsec", lines.append, probe=_Never(), interval=60)  # type: ignore[arg-type]


def test_quiet_while_healthy_loud_on_failure_and_recovery() -> None:
    lines: list[str] = []
    probe = loop(lines)
    ok = ProbeResult(True, "evt_1", "completed", latency_ms=12.5)
    probe.report(ok)
    probe.report(ok)
    probe.report(ProbeResult(False, "evt_2", "delivery", detail="no message within 6 s"))
    probe.report(ok)
    assert lines == [
        "probe completed in 12.5 ms (runs every 60 s)",
        "probe FAILED at delivery: no message within 6 s "
        "(pipeline stalled? see runbooks/synthetic-probe.md)",
        "probe recovered: completed in 12.5 ms",
    ]


def test_nothing_is_reported_once_the_stack_stops() -> None:
    lines: list[str] = []
    probe = loop(lines)
    probe.close()
    probe.report(ProbeResult(False, "evt_3", "error", detail="webhook unreachable"))
    assert lines == []
