"""CPU time and peak RSS of a process tree, read from /proc (Linux only, as the bench is)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (functions-framework forks a gunicorn worker)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found.extend(int(child) for child in children if int(child) not in found)
    return found


def _cpu_of(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces; fields after the closing parenthesis are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the whole tree so far."""
    return sum(_cpu_of(p) for p in descendants(pid))


def peak_rss_mb(pid: int, *, tree: bool = True) -> float:
    """Largest VmHWM (peak resident set) in the tree (or of `pid` alone), in MiB."""
    peak_kb = 0
    for p in descendants(pid) if tree else [pid]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak_kb = max(peak_kb, int(line.split()[1]))
    return round(peak_kb / 1024, 1)
