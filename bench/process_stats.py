"""CPU time and resident memory of a process and its descendants, read from /proc (Linux), for
per-session costs.

Descendants count because ``lipstream serve --workers N`` runs sessions in child processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One reading: CPU seconds used so far (user + system, all threads) and resident set size,
    each summed over the process and its live descendants."""

    cpu_s: float
    rss_mb: float


def sample(pid: int) -> ProcessSample:
    """Reads ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` of ``pid`` and every descendant."""
    cpu_s, rss_mb = 0.0, 0.0
    for member in [pid, *descendants(pid)]:
        try:
            own = _sample_one(member)
        except (FileNotFoundError, ProcessLookupError):  # exited between listing and reading
            continue
        cpu_s += own.cpu_s
        rss_mb += own.rss_mb
    return ProcessSample(cpu_s, rss_mb)


def rss_by_process(pid: int) -> dict[int, float]:
    """Resident MB of ``pid`` and each descendant, so growth can be traced to one process."""
    out = {}
    for member in [pid, *descendants(pid)]:
        try:
            out[member] = _sample_one(member).rss_mb
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren ... of ``pid`` (from ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except FileNotFoundError:
                continue
            found += kids
            pending += kids
    return found


def _sample_one(pid: int) -> ProcessSample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_HZ  # utime, stime
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return ProcessSample(cpu_s, rss_kb / 1024)
