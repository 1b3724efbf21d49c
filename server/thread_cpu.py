"""CPU time of this process by thread role, read from /proc at each scrape (Linux).

The stage counters (``lipstream_stage_cpu_seconds_total``) time the pipeline and the render; they
do not see aiortc's work on the event loop (RTP, SRTP, RTCP), its encoder pool or its decoder
threads (Opus), nor what the stages cost live rather than in a warm loop. Measured live, each stage
costs 1.4-2x what ``bench.stage_cost`` finds (a session's thread runs 8 ms of every 40 and its
caches go cold between), so the split by thread is what says where a session's CPU goes.

Roles, from the names Python and aiortc give their threads:

- ``event_loop``: the main thread (aiortc's RTP path, signalling, the session's hand-offs);
- ``session``: each session's worker thread (resampling, the motion pipeline, the render, and the
  channel's one VP8 coding of each frame, ``media/video_out.py``);
- ``media_encode``: the event loop's default executor, where aiortc encodes (Opus for voice that
  is not passed through, and video for a consumer that negotiated a codec other than VP8);
- ``media_decode``: aiortc's decoder threads (the speaker's Opus);
- ``other``: any other Python thread;
- ``native``: threads no Python code started (onnxruntime or libvpx pools, when set above one).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

CLOCK_TICKS_HZ = os.sysconf("SC_CLK_TCK")
ROLE_PREFIXES = (
    ("MainThread", "event_loop"),
    ("session-", "session"),
    ("asyncio_", "media_encode"),
    ("audio-decoder", "media_decode"),
    ("video-decoder", "media_decode"),
)


def role_of(thread_name: str) -> str:
    """The role a thread's name says it has (``other`` when it says none)."""
    for prefix, role in ROLE_PREFIXES:
        if thread_name.startswith(prefix):
            return role
    return "other"


def _cpu_seconds(stat_path: Path) -> float | None:
    """User + system CPU seconds from a ``/proc/.../stat`` file; None if it is gone."""
    try:
        fields = stat_path.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_HZ


def _python_threads() -> dict[int, tuple[str, float]]:
    """Role and CPU seconds of each live Python thread, by native thread id."""
    found = {}
    for thread in threading.enumerate():
        if thread.native_id is None:
            continue
        seconds = _cpu_seconds(Path("/proc/self/task") / str(thread.native_id) / "stat")
        if seconds is not None:
            found[thread.native_id] = (role_of(thread.name), seconds)
    return found


class ThreadCpu:
    """Running CPU seconds per role; each figure only grows, as a Prometheus counter must.

    A thread's time stays in its role after it ends (what it used since the last reading goes to
    ``native``, which is the process's total less everything the roles hold).
    """

    def __init__(self) -> None:
        self._last: dict[int, float] = {}  # native thread id -> its CPU seconds at the last read
        self._by_role: dict[str, float] = defaultdict(float)

    def read(self) -> dict[str, float]:
        """CPU seconds so far by role, and ``native``; empty where there is no /proc (not Linux)."""
        total = _cpu_seconds(Path("/proc/self/stat"))
        if total is None:
            return {}
        threads = _python_threads()
        for tid, (role, seconds) in threads.items():
            self._by_role[role] += max(0.0, seconds - self._last.get(tid, 0.0))
            self._last[tid] = seconds
        self._last = {tid: self._last[tid] for tid in threads}  # thread ids are reused
        roles = dict(self._by_role)
        roles["native"] = max(0.0, total - sum(roles.values()))
        return roles


class ThreadCpuCollector(Collector):
    """Exposes ``ThreadCpu`` as ``lipstream_thread_cpu_seconds_total{role}``."""

    def __init__(self) -> None:
        self._cpu = ThreadCpu()

    def collect(self) -> Iterator[Metric]:
        """One sample per role, read now."""
        family = CounterMetricFamily(
            "lipstream_thread_cpu_seconds",
            "CPU time of this process's threads by role (event loop, sessions, codecs, native)",
            labels=["role"],
        )
        for role, seconds in sorted(self._cpu.read().items()):
            family.add_metric([role], seconds)
        yield family
