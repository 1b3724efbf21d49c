"""The independent live probe against a real server, with the server's CPU read from /proc.

Starts ``lipstream serve`` (its default workers), runs ``../shared/checks/live_probe.py`` with
``--sessions N --seconds 20`` in the checks' own environment, and reads the server's process tree
CPU (``bench/process_stats.py``) over ``WINDOW_S`` in the middle of the talking, so the start and
the end of the sessions are not in it. Prints the probe's last line and the server's cores, in all
and per session, and per session by thread role over the same window (the workers'
``lipstream_thread_cpu_seconds_total``, ``server/thread_cpu.py``). Run on a quiet machine.

Where the machine allows (4 cores or more), the probe is pinned apart: it keeps to the last
quarter of the cores and the server (whose workers follow its cores) to the rest, so the client's
own bursts do not land on a worker's core and two runs measure the same thing. On fewer cores
they share all of them, as a client on the same box would; ``--client-cores N`` sets the split
by hand (``0``: shared).

    python -m bench.probe_cpu WAV [--sessions 4] [--python ~/checkenv/bin/python] [--runs 3]
        [--client-cores N] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.process_stats import sample
from bench.server_process import ServerProcess, metrics_text

PROBE = Path(__file__).resolve().parents[2] / "shared" / "checks" / "live_probe.py"
PIN_APART_FROM_CORES = 4  # below this, the probe and the server share every core
SETTLE_S = 8.0  # sessions connect and start talking
WINDOW_S = 10.0  # of the probe's 20 s of talking


def cpu_by_role(url: str) -> dict[str, float]:
    """The server's thread CPU seconds so far by role, summed over its workers."""
    return cpu_by_label(url, "lipstream_thread_cpu_seconds", "role")


def cpu_by_label(url: str, family_name: str, label: str) -> dict[str, float]:
    """A CPU-seconds counter family's totals so far by ``label``, summed over the workers."""
    seconds: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics_text(url)):
        if family.name == family_name:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    seconds[sample.labels[label]] += sample.value
    return seconds


def per_session(output: str) -> str:
    """Each session's fps and lips-after-voice from the probe's ``session i:`` lines.

    The issue's lips p95 over four sessions is their worst, which the probe's median hides.
    """
    fields = []
    for line in output.splitlines():
        if line.startswith("session "):
            values = dict(item.split("=", 1) for item in line.split()[2:] if "=" in item)
            fields.append(
                f"{float(values.get('fps', 0)):.1f} fps/{values.get('latency_ms', '-')} ms"
            )
    return ", ".join(fields)


@dataclass(frozen=True)
class Placement:
    """Which cores the server and the probe keep to; both None when they share every core."""

    server: set[int] | None = None
    client: set[int] | None = None

    def describe(self) -> str:
        if self.server is None or self.client is None:
            return "server and probe share every core"
        return f"server on cores {sorted(self.server)}, probe on cores {sorted(self.client)}"


def placement(client_cores: int | None, cpus: set[int]) -> Placement:
    """The split of ``cpus``: the server keeps the lowest, the probe the ``client_cores`` highest.

    None chooses: a quarter of the cores from ``PIN_APART_FROM_CORES`` up, else none (shared).
    """
    ordered = sorted(cpus)
    if client_cores is None:
        client_cores = len(ordered) // 4 if len(ordered) >= PIN_APART_FROM_CORES else 0
    if client_cores <= 0:
        return Placement()
    if client_cores >= len(ordered):
        raise SystemExit(f"--client-cores {client_cores} leaves the server no core of {ordered}")
    return Placement(server=set(ordered[:-client_cores]), client=set(ordered[-client_cores:]))


def one_run(
    wav: Path, sessions: int, python: str, where: Placement, serve_args: list[str]
) -> tuple[str, float, dict[str, float]]:
    """The probe's summary and per-session lines, the server's cores over the window, by role."""
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = ServerProcess(log, "--no-auth", *serve_args, cpus=where.server)
    with server as url:
        assert server.process is not None
        pid = server.process.pid
        command = [python, str(PROBE), f"{url}/whip", str(wav), "--sessions", str(sessions),
                   "--seconds", "20"]  # fmt: skip
        if where.client:
            command = ["taskset", "--cpu-list", ",".join(map(str, sorted(where.client))), *command]
        probe = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        time.sleep(SETTLE_S)
        before, roles_before, started = sample(pid).cpu_s, cpu_by_role(url), time.monotonic()
        time.sleep(WINDOW_S)
        seconds = time.monotonic() - started
        cores = (sample(pid).cpu_s - before) / seconds
        roles = {r: (s - roles_before.get(r, 0.0)) / seconds for r, s in cpu_by_role(url).items()}
        output, _ = probe.communicate()
    summary = [line for line in output.splitlines() if line.startswith("sessions=")]
    line = summary[-1] if summary else output[-500:]
    return f"{line}\n  each session: {per_session(output)}", cores, roles


def main() -> None:
    """Runs the probe ``--runs`` times and prints each run's line and cores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", type=Path)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--python", default=str(Path.home() / "checkenv" / "bin" / "python"))
    parser.add_argument(
        "--client-cores", type=int, default=None,
        help="cores kept for the probe, the highest ones (default: a quarter from 4 cores up, "
        "else 0 = shared)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="passed to serve (default: serve's own)")
    args = parser.parse_args()
    serve_args = [] if args.workers is None else ["--workers", str(args.workers)]
    where = placement(args.client_cores, os.sched_getaffinity(0))
    print(where.describe(), flush=True)
    for _ in range(args.runs):
        line, cores, roles = one_run(args.wav, args.sessions, args.python, where, serve_args)
        per_session = cores / args.sessions
        by_role = " ".join(f"{r}={c / args.sessions:.3f}" for r, c in sorted(roles.items()))
        summary, sessions = line.split("\n", 1)
        print(f"{summary} server_cores={cores:.3f} per_session={per_session:.3f}", flush=True)
        print(sessions, flush=True)
        print(f"  per session by thread role: {by_role}", flush=True)


if __name__ == "__main__":
    main()
