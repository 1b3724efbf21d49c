"""What an idle channel costs the server: WHEP viewers watching a channel nobody speaks on.

    python -m bench.idle_cost [--seconds 15] [--viewers 1]

Starts ``lipstream serve --workers 1``, measures the server's CPU (its process tree, /proc) for
10 s with no channel, then while one viewer watches an idle channel (the blinking face, fed
silence through the pipeline, rendered and encoded for the viewers), with the server's CPU a
rendered frame by thread role (``lipstream_thread_cpu_seconds_total``) and by the session's stage
(``lipstream_stage_cpu_seconds_total``). With ``--viewers N`` (N > 1) the figures go to
``bench/results/idle_cost_N_viewers.json``: what each viewer past the first costs. Run on a quiet
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.probe_cpu import cpu_by_label, cpu_by_role
from bench.process_stats import sample
from bench.report import save
from bench.server_process import ServerProcess, metric
from bench.whip_client import WebRtcClient

SETTLE_S = 5.0


async def watch(
    url: str, pid: int, seconds: float, viewers: int = 1
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Server cores, lowest fps received and CPU ms a rendered frame by role and stage.

    ``viewers`` clients watch a channel nobody speaks on.
    """
    clients = [WebRtcClient(url, keep_frames=False) for _ in range(viewers)]
    for client in clients:
        await client.view("idle-cost")
    await asyncio.sleep(SETTLE_S)
    before, started = sample(pid).cpu_s, time.monotonic()
    counters = {"thread_role": cpu_by_role(url), "session_stage": stage_cpu(url)}
    frames = metric(url, "lipstream_frames_rendered_total")
    await asyncio.sleep(seconds)
    cores = (sample(pid).cpu_s - before) / (time.monotonic() - started)
    rendered = max(metric(url, "lipstream_frames_rendered_total") - frames, 1.0)
    now = {"thread_role": cpu_by_role(url), "session_stage": stage_cpu(url)}
    per_frame = {
        kind: {
            k: round(1000 * (v - counters[kind].get(k, 0.0)) / rendered, 3)
            for k, v in sorted(now[kind].items())
        }
        for kind in now
    }
    ended = time.monotonic()
    fps = min(client.received.fps(started, ended) for client in clients)
    for client in clients:
        await client.close()
    return cores, fps, per_frame


def stage_cpu(url: str) -> dict[str, float]:
    """The sessions' CPU seconds so far by pipeline stage (resample, motion, render, ...)."""
    return cpu_by_label(url, "lipstream_stage_cpu_seconds", "stage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--viewers", type=int, default=1)
    args = parser.parse_args()
    server = ServerProcess(Path(tempfile.mkdtemp()) / "server.log", "--workers", "1")
    with server as url:
        assert server.process is not None
        pid = server.process.pid
        before = sample(pid).cpu_s
        time.sleep(10.0)
        quiet = (sample(pid).cpu_s - before) / 10.0
        cores, fps, per_frame = asyncio.run(watch(url, pid, args.seconds, args.viewers))
    watched = "1_viewer" if args.viewers == 1 else f"{args.viewers}_viewers"
    result = {
        "server_cores_no_channel": quiet,
        f"server_cores_idle_channel_{watched}": cores,
        "viewer_fps": fps,
        "cpu_ms_per_frame_by_thread_role": per_frame["thread_role"],
        "cpu_ms_per_frame_by_session_stage": per_frame["session_stage"],
    }
    name = "idle_cost" if args.viewers == 1 else f"idle_cost_{watched}"
    command = f"python -m bench.idle_cost --seconds {args.seconds:g}"
    save(name, result, command + ("" if args.viewers == 1 else f" --viewers {args.viewers}"))


if __name__ == "__main__":
    main()
