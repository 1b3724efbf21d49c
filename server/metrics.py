"""Prometheus metrics for one running app (a registry per app: tests run several in a process)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .thread_cpu import ThreadCpuCollector

VOICE_DELAY_BUCKETS_S = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1.0)


@dataclass(frozen=True)
class Metrics:
    """The counters the server updates; names follow Prometheus conventions (base units, _total)."""

    registry: CollectorRegistry
    sessions: Gauge
    viewers: Gauge
    sessions_rejected: Counter
    frames_rendered: Counter
    frames_dropped: Counter
    frames_coded: Counter
    voice_delay: Histogram
    stage_cpu: Counter

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


def new_metrics() -> Metrics:
    """Creates a fresh registry with every lipstream metric registered.

    Besides these, ``lipstream_thread_cpu_seconds_total{role}`` (``thread_cpu.py``) is read at
    each scrape.
    """
    registry = CollectorRegistry()
    registry.register(ThreadCpuCollector())
    return Metrics(
        registry=registry,
        sessions=Gauge("lipstream_sessions", "Speaking sessions now open", registry=registry),
        viewers=Gauge("lipstream_viewers", "WHEP viewers now connected", registry=registry),
        sessions_rejected=Counter(
            "lipstream_sessions_rejected_total",
            "Offers refused, by reason",
            ["reason"],
            registry=registry,
        ),
        frames_rendered=Counter(
            "lipstream_frames_rendered_total", "Video frames rendered and sent", registry=registry
        ),
        frames_dropped=Counter(
            "lipstream_frames_dropped_total",
            "Video frames skipped because a newer one was ready before rendering began",
            registry=registry,
        ),
        frames_coded=Counter(
            "lipstream_video_frames_coded_total",
            "Video frames VP8-coded once for all of a channel's VP8 consumers (video_out.py)",
            registry=registry,
        ),
        voice_delay=Histogram(
            "lipstream_pipeline_delay_seconds",
            "Time each voice frame is held between arrival and release with its video frame",
            buckets=VOICE_DELAY_BUCKETS_S,
            registry=registry,
        ),
        stage_cpu=Counter(
            "lipstream_stage_cpu_seconds_total",
            "CPU time spent per pipeline stage (thread time of the worker that ran it)",
            ["stage"],
            registry=registry,
        ),
    )
