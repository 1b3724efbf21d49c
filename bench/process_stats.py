"""CPU time and resident memory of a process, read from /proc (Linux), for per-session costs."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One reading: CPU seconds used so far (user + system, all threads) and resident set size."""

    cpu_s: float
    rss_mb: float


def sample(pid: int) -> ProcessSample:
    """Reads ``/proc/<pid>/stat`` and ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_HZ  # utime, stime
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return ProcessSample(cpu_s, rss_kb / 1024)
