"""What an idle channel costs the server: one WHEP viewer watching a channel nobody speaks on.

    python -m bench.idle_cost [--seconds 15]

Starts ``lipstream serve --workers 1``, measures the server's CPU (its process tree, /proc) for
10 s with no channel, then while one viewer watches an idle channel (the blinking face, fed
silence through the pipeline, rendered and encoded for the viewer), with the server's CPU a
rendered frame by thread role (``lipstream_thread_cpu_seconds_total``). Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.probe_cpu import cpu_by_role
from bench.process_stats import sample
from bench.report import save
from bench.server_process import ServerProcess, metric
from bench.whip_client import WebRtcClient

SETTLE_S = 5.0


async def watch(url: str, pid: int, seconds: float) -> tuple[float, float, dict[str, float]]:
    """Server cores, fps received and CPU ms a rendered frame by thread role, one idle viewer.

    The viewer watches a channel nobody speaks on.
    """
    viewer = WebRtcClient(url, keep_frames=False)
    await viewer.view("idle-cost")
    await asyncio.sleep(SETTLE_S)
    before, started = sample(pid).cpu_s, time.monotonic()
    roles, frames = cpu_by_role(url), metric(url, "lipstream_frames_rendered_total")
    await asyncio.sleep(seconds)
    cores = (sample(pid).cpu_s - before) / (time.monotonic() - started)
    rendered = metric(url, "lipstream_frames_rendered_total") - frames
    by_role = {
        role: round(1000 * (cpu - roles.get(role, 0.0)) / max(rendered, 1.0), 3)
        for role, cpu in sorted(cpu_by_role(url).items())
    }
    fps = viewer.received.fps(started, time.monotonic())
    await viewer.close()
    return cores, fps, by_role


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    server = ServerProcess(Path(tempfile.mkdtemp()) / "server.log", "--workers", "1")
    with server as url:
        assert server.process is not None
        pid = server.process.pid
        before = sample(pid).cpu_s
        time.sleep(10.0)
        quiet = (sample(pid).cpu_s - before) / 10.0
        cores, fps, by_role = asyncio.run(watch(url, pid, args.seconds))
    result = {
        "server_cores_no_channel": quiet,
        "server_cores_idle_channel_1_viewer": cores,
        "viewer_fps": fps,
        "cpu_ms_per_frame_by_thread_role": by_role,
    }
    save("idle_cost", result, f"python -m bench.idle_cost --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
