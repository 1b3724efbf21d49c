"""Where the running server holds the GIL, with live sessions: a sampling profile by stage.

Starts a real ``lipstream serve`` (front and workers), connects ``--sessions`` independent aiortc
clients that send real speech (LibriSpeech, ../shared/data, CC BY 4.0), and lets py-spy sample
every server process for ``--seconds`` while they talk. py-spy reads the processes from outside,
so the server runs unmodified.

Only samples of the thread holding the GIL are kept. A worker is one Python process, so its GIL is
the resource its sessions queue for: Python-level work (the event loop, aiortc's RTP code, numpy
glue) holds it, while onnxruntime, libvpx and libopus release it and run on the other core. The
CPU of those native stages is measured exactly by ``bench/stage_cost.py``; this harness shows
what the GIL is busy with around them, and how busy it is. The server's total CPU over the same
window comes from /proc.

Prints the GIL time (in seconds per second) of each stage and of the functions holding it (self
time), and writes ``bench/results/hot_path.json``. Needs py-spy (the ``dev`` extra) and permission
to read other processes (root, or ``kernel.yama.ptrace_scope = 0``).

    python -m bench.hot_path [--sessions 4] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import process_stats
from bench.lipsync import real_speech
from bench.report import save
from bench.server_process import ServerProcess
from bench.whip_client import SEND_RATE_HZ, WebRtcClient

SAMPLE_RATE_HZ = 200
SETTLE_S = 3.0  # let every session reach steady state before sampling
TOP_FUNCTIONS = 20

# Stages by where a sampled stack passes, in priority order: the first pattern that matches any
# frame of the stack names the stage.
STAGE_MARKERS = (
    ("render (generator, compose)", r"_render \(.*/server/media/session\.py"),
    ("motion pipeline (resample, VAD, features, encoder, motion)",
     r"_process \(.*/server/media/session\.py"),
    ("VP8 encode", r"encode \(.*/aiortc/codecs/vpx\.py"),
    ("Opus encode", r"encode \(.*/aiortc/codecs/opus\.py"),
    ("Opus decode", r"decode \(.*/aiortc/codecs/opus\.py"),
    ("SRTP and UDP send", r"_send_rtp \(.*/aiortc/rtcdtlstransport\.py"),
    ("RTP receive (SRTP, jitter buffer)",
     r"/aiortc/rtcrtpreceiver\.py|_handle_data \(.*/aiortc/rtcdtlstransport"),
    ("RTP send (packetise, pacing, RTCP)", r"/aiortc/rtcrtpsender\.py"),
    ("ICE and UDP (aioice)", r"/aioice/"),
    ("session tasks (feed, release voice, tracks)",
     r"/server/media/(session|ingest|tracks|channel)\.py"),
)  # fmt: skip
OTHER_STAGE = "other (event loop, HTTP, idle bookkeeping)"


def py_spy() -> str:
    """The py-spy executable beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: pip install -e '.[dev]'")
    return found


def record(pid: int, seconds: float, out: Path) -> None:
    """Samples ``pid`` and its children (the workers) into collapsed stacks at ``out``."""
    command = [
        py_spy(), "record", "--pid", str(pid), "--subprocesses", "--duration", str(int(seconds)),
        "--rate", str(SAMPLE_RATE_HZ), "--format", "raw", "--output", str(out), "--full-filenames",
        "--gil", "--nonblocking",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """``frame;frame;...;leaf count`` lines -> (frames root first, count)."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def stage_of(frames: list[str]) -> str:
    """The stage a stack belongs to (see ``STAGE_MARKERS``)."""
    for stage, pattern in STAGE_MARKERS:
        if any(re.search(pattern, frame) for frame in frames):
            return stage
    return OTHER_STAGE


def function_of(frame: str) -> str:
    """``name (path/to/package/module.py:123)`` -> ``package/module.py:name``."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    return "/".join(Path(path).parts[-2:]) + ":" + name


def process_of(frames: list[str]) -> int | None:
    """The pid of the sampled process (the last ``process <pid>:...`` frame py-spy adds)."""
    pids = [int(f.split()[1].split(":")[0]) for f in frames if f.startswith("process ")]
    return pids[-1] if pids else None


def summarise(
    stacks: list[tuple[list[str], int]], seconds: float, front_pid: int
) -> dict[str, object]:
    """GIL seconds per second: per process, per stage and per self-time function."""
    per_process: Counter[str] = Counter()
    per_stage: Counter[str] = Counter()
    per_function: Counter[str] = Counter()
    for frames, count in stacks:
        pid = process_of(frames)
        python_frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not python_frames:
            continue
        per_process["front" if pid == front_pid else f"worker pid {pid}"] += count
        per_stage[stage_of(python_frames)] += count
        per_function[function_of(python_frames[-1])] += count
    samples_per_second = SAMPLE_RATE_HZ * seconds
    return {
        "gil_busy_by_process": {
            k: round(v / samples_per_second, 3) for k, v in sorted(per_process.items())
        },
        "gil_s_per_s_by_stage": {
            k: round(v / samples_per_second, 3) for k, v in per_stage.most_common()
        },
        "gil_s_per_s_by_function": {
            k: round(v / samples_per_second, 3) for k, v in per_function.most_common(TOP_FUNCTIONS)
        },
    }


async def talk_and_record(url: str, pid: int, sessions: int, seconds: float) -> tuple[str, float]:
    """Runs ``sessions`` clients for the whole recording; returns py-spy's collapsed stacks and
    the server's CPU (cores, all processes) over the same window."""
    speech, _ = real_speech(clips=6)
    clients = [WebRtcClient(url, keep_frames=False) for _ in range(sessions)]
    for client in clients:
        await client.publish(speech)
    assert len(speech) / SEND_RATE_HZ > seconds + SETTLE_S, "too little speech for the recording"
    await asyncio.sleep(SETTLE_S)
    before = process_stats.sample(pid)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stacks.txt"
        await asyncio.to_thread(record, pid, seconds, out)
        stacks = out.read_text()
    server_cores = (process_stats.sample(pid).cpu_s - before.cpu_s) / seconds
    for client in clients:
        await client.close()
    return stacks, server_cores


def main() -> None:
    """Runs the harness and writes ``bench/results/hot_path.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = ServerProcess(log, "--driver", args.driver, "--max-sessions", str(args.sessions))
    with server as url:
        assert server.process is not None
        pid = server.process.pid
        stacks, cores = asyncio.run(talk_and_record(url, pid, args.sessions, args.seconds))
    result = {
        "server_cores": round(cores, 3),
        **summarise(parse_collapsed(stacks), args.seconds, pid),
    }
    result.update({"sessions": args.sessions, "seconds": args.seconds, "driver": args.driver})
    command = (
        f"python -m bench.hot_path --sessions {args.sessions} --seconds {args.seconds:g} "
        f"--driver {args.driver}"
    )
    save("hot_path", result, command)


if __name__ == "__main__":
    main()
