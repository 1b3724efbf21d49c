"""Capacity and overload on this machine: N concurrent speaking sessions over real WebRTC on
loopback.

For each N, N independent clients (one process, as a separate machine would be) send the onset train
at once. Reported per N: the lowest per-session fps, frames dropped as a share of frames due, lip
latency p95 over all sessions, and server CPU (cores) and memory per session. Then an overload step
at 2x the largest passing N, followed, on the same server once those clients have hung up, by a
single session to show recovery.

    python -m bench.capacity --max-sessions 6 --onsets 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.latency import run
from bench.process_stats import sample
from bench.report import save
from bench.server_process import ServerProcess, metric

MIN_FPS = 24.0
MAX_DROP_SHARE = 0.01
LATENCY_BOUND_MS = 150.0


def measure(args: argparse.Namespace, sessions: int) -> dict[str, object]:
    """One fresh server, ``sessions`` clients at once; returns the figures for that N."""
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = ServerProcess(log, "--driver", args.driver, "--max-sessions", str(sessions))
    with server as url:
        assert server.process is not None
        return measure_on(url, server.process.pid, args.onsets, sessions)


def measure_on(url: str, pid: int, onsets: int, sessions: int) -> dict[str, object]:
    """``sessions`` clients at once on the running server ``url`` (process ``pid``).

    Frame counts are the difference over the run, so a server that already served others
    (the recovery step) is judged on this run alone.
    """
    idle = sample(pid)
    rendered_before = metric(url, "lipstream_frames_rendered_total")
    dropped_before = metric(url, "lipstream_frames_dropped_total")
    started = time.monotonic()
    result = asyncio.run(run(url, onsets, sessions))
    elapsed = time.monotonic() - started
    busy = sample(pid)
    rendered = metric(url, "lipstream_frames_rendered_total") - rendered_before
    dropped = metric(url, "lipstream_frames_dropped_total") - dropped_before
    p95s = [s["latency_ms"]["p95"] for s in result["per_session"] if s["latency_ms"]["p95"]]
    cores = (busy.cpu_s - idle.cpu_s) / elapsed
    return {
        "sessions": sessions,
        "min_fps": float(min(result["fps"])),
        "drop_share": dropped / max(rendered + dropped, 1),
        "latency_p95_ms_worst": float(max(p95s)) if p95s else None,
        "latency_p50_ms": [s["latency_ms"]["p50"] for s in result["per_session"]],
        "face_found_rate_min": min(s["face_found_rate"] for s in result["per_session"]),
        "server_cores": cores,
        "server_cores_per_session": cores / sessions,
        "server_rss_mb": busy.rss_mb,
        "server_rss_mb_per_session": (busy.rss_mb - idle.rss_mb) / sessions,
        "stages_cpu_ms_per_frame": result["server"],
    }


def overload_and_recovery(
    args: argparse.Namespace, sessions: int
) -> tuple[dict[str, object], dict[str, object]]:
    """``sessions`` clients on one server, then, once they have hung up, one on the same server."""
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = ServerProcess(log, "--driver", args.driver, "--max-sessions", str(sessions))
    with server as url:
        assert server.process is not None
        overload = measure_on(url, server.process.pid, args.onsets, sessions)
        recovery = measure_on(url, server.process.pid, args.onsets, 1)
    return overload, recovery


def passes(row: dict[str, object]) -> bool:
    """The issue's bar: ≥ 24 fps each, < 1 % dropped, p95 lips within 150 ms."""
    p95 = row["latency_p95_ms_worst"]
    return (
        row["min_fps"] >= MIN_FPS
        and row["drop_share"] < MAX_DROP_SHARE
        and p95 is not None
        and p95 <= LATENCY_BOUND_MS
    )


def main() -> None:
    """Steps N up until a step fails, then overloads at 2x and checks recovery."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-sessions", type=int, default=6)
    parser.add_argument("--onsets", type=int, default=40)
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    rows, best = [], 0
    for n in range(1, args.max_sessions + 1):
        row = measure(args, n)
        row["passes"] = passes(row)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not row["passes"]:
            break
        best = n
    overload, recovery = overload_and_recovery(args, max(2 * best, 2))
    report = {
        "driver": args.driver,
        "largest_passing_sessions": best,
        "steps": rows,
        "overload": overload,
        "recovery_single_session": recovery,
    }
    command = (
        f"python -m bench.capacity --max-sessions {args.max_sessions} --onsets {args.onsets} "
        f"--driver {args.driver}"
    )
    save(f"capacity-{args.driver}", report, command)


if __name__ == "__main__":
    main()
