"""A pytest plugin: no log line of the whole test run may hold a secret, a signature or a
card number. It reads every test's captured output and the log files of every
functions-framework process the run started, and fails the session if anything leaks.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

_SECRET = re.compile(r"whsec_[A-Za-z0-9]{6,}|sk_(?:test|live)_[A-Za-z0-9]{6,}")
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}|t=\d{9,},v1=")
_DIGITS = re.compile(r"(?<![\w.])(?:\d[ -]?){12,18}\d(?![\w.])")
_FUNCTION_LOG = re.compile(
    r"^(stripe_webhook|process_stripe_event|relay_sweep|reevaluate_due|reconcile_all|"
    r"create_checkout_session|create_portal_session|change_subscription)-.*\.log$"
)

_started = time.time()
_captured: list[tuple[str, str]] = []


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 1 else digit
        checksum += doubled - 9 if doubled > 9 else doubled
    return checksum % 10 == 0


def find_leaks(text: str) -> list[str]:
    leaks = [f"secret {m.group()[:10]}..." for m in _SECRET.finditer(text)]
    leaks += [f"signature {m.group()[:12]}..." for m in _SIGNATURE.finditer(text)]
    for match in _DIGITS.finditer(text):
        number = re.sub(r"[ -]", "", match.group())
        if 13 <= len(number) <= 19 and luhn_valid(number) and not _is_epoch_like(number):
            leaks.append(f"card-like number {number[:4]}...{number[-2:]}")
    return leaks


def _is_epoch_like(number: str) -> bool:
    # Millisecond and microsecond timestamps from this decade are not card numbers.
    return number.startswith("17") and len(number) in (13, 16)


def function_logs(since: float) -> Iterable[Path]:
    for path in Path(tempfile.gettempdir()).iterdir():
        if _FUNCTION_LOG.match(path.name) and path.stat().st_mtime >= since:
            yield path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    text = "".join(text for name, text in report.sections if name.startswith("Captured log"))
    text += report.capstdout + report.capstderr
    if text:
        _captured.append((report.nodeid, text))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found: list[str] = []
    for nodeid, text in _captured:
        found += [f"{nodeid}: {leak}" for leak in find_leaks(text)]
    scanned = 0
    for path in function_logs(_started):
        scanned += 1
        found += [f"{path.name}: {leak}" for leak in find_leaks(path.read_text(errors="replace"))]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"log scan: {len(_captured)} captured outputs and {scanned} function logs, "
            f"{len(found)} leaks"
        )
        for leak in found[:20]:
            reporter.write_line(f"  LEAK {leak}", red=True)
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
