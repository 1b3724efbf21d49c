"""Soak: one session for a long time; does memory, latency or the A/V offset drift?

An independent client sends the onset train continuously and measures every returned frame's mouth
opening as it arrives (MediaPipe, nothing stored), so the run can last 30 minutes; a WHEP viewer
on the same channel measures the same at a viewer's end. Reported per block of minutes: lip
latency p50/p95, A/V offset median (speaker and viewer), fps, and the server's resident memory.

    python -m bench.soak --minutes 30 [--driver learned]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.latency import PERIOD_S, analyse
from bench.mouth import MouthMeter
from bench.process_stats import rss_by_process, sample
from bench.report import save
from bench.server_process import ServerProcess
from bench.voices import RATE_HZ, VOWEL_ONSETS, onset_train
from bench.whip_client import WebRtcClient

BLOCK_S = 300.0
MEMORY_EVERY_S = 30.0


def block_summary(
    client: WebRtcClient, viewer: WebRtcClient, onsets: list[int], start: float, end: float
) -> dict:
    """Figures for the onsets whose packets left in ``[start, end)``."""
    assert client.voice is not None
    chosen = [o for o in onsets if start <= client.voice.send_time(o) < end]
    result = analyse(client, chosen, np.asarray(client.received.probes, dtype=np.float32))
    seen = analyse(
        viewer, chosen, np.asarray(viewer.received.probes, dtype=np.float32), sender=client.voice
    )
    return {
        "from_s": start - client.voice.started_at,
        "onsets": len(chosen),
        "latency_ms": result["latency_ms"],
        "fps": client.received.fps(start, min(end, client.received.video_at[-1])),
        "av_offset_median_ms": _median_ms(result["offsets_s"]),
        "viewer_latency_ms": seen["latency_ms"],
        "viewer_fps": viewer.received.fps(start, min(end, viewer.received.video_at[-1])),
        "viewer_av_offset_median_ms": _median_ms(seen["offsets_s"]),
    }


def _median_ms(values: list[float]) -> float | None:
    return 1000 * float(np.median(values)) if values else None


async def soak(url: str, pid: int, minutes: float) -> dict:
    """Runs the session and samples the server's memory while it lasts."""
    count = int(minutes * 60 / PERIOD_S)
    samples, onsets = onset_train(list(VOWEL_ONSETS), count, PERIOD_S)
    meter, viewer_meter = MouthMeter(), MouthMeter()
    client = WebRtcClient(url, keep_frames=False, probe=meter)
    viewer = WebRtcClient(url, keep_frames=False, probe=viewer_meter)
    await client.publish(samples, "?channel=soak")
    await viewer.view("soak")
    memory, by_process = [], []
    ends_at = time.monotonic() + len(samples) / RATE_HZ
    while time.monotonic() < ends_at:
        memory.append((time.monotonic(), sample(pid).rss_mb))
        by_process.append(rss_by_process(pid))
        await asyncio.sleep(MEMORY_EVERY_S)
    await viewer.close()
    await client.close()
    meter.close()
    viewer_meter.close()
    assert client.voice is not None and client.voice.started_at is not None
    t0 = client.voice.started_at
    blocks = [
        block_summary(client, viewer, onsets, t0 + s, t0 + s + BLOCK_S)
        for s in np.arange(0, minutes * 60, BLOCK_S)
    ]
    settled = [m for t, m in memory if t - t0 > 60]
    return {
        "blocks": blocks,
        "rss_mb": [m for _, m in memory],
        "rss_mb_by_process": {  # the front (first) and its workers, same sample times
            str(p): [round(row.get(p, 0.0), 1) for row in by_process] for p in by_process[0]
        },
        "rss_growth_after_first_minute": (settled[-1] / settled[0] - 1) if settled else None,
    }


def main() -> None:
    """Runs the soak and writes ``bench/results/soak-<driver>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    server = ServerProcess(Path(tempfile.mkdtemp()) / "server.log", "--driver", args.driver)
    with server as url:
        assert server.process is not None
        result = asyncio.run(soak(url, server.process.pid, args.minutes))
    result.update({"driver": args.driver, "minutes": args.minutes})
    command = f"python -m bench.soak --minutes {args.minutes:g} --driver {args.driver}"
    save(f"soak-{args.driver}", result, command)


if __name__ == "__main__":
    main()
