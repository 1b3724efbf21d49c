"""Starts a real ``lipstream serve`` process on a free loopback port (for tests and harnesses)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_S = 90.0  # the first start builds the default avatar (MediaPipe init included)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``with ServerProcess(log, "--driver", "loudness") as url:`` runs a server until the block
    ends.

    ``cpus`` keeps the server (and so its workers, one per core it may use) to those cores, so
    that a bench client can run on the others.
    """

    def __init__(self, log: Path, *args: str, cpus: set[int] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._args = args
        self._cpus = cpus
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Starts the server and waits until /healthz answers; returns the base URL."""
        command = [
            sys.executable,
            "-m",
            "lipstream.server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self._args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self._cpus:
            command = ["taskset", "--cpu-list", ",".join(map(str, sorted(self._cpus))), *command]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        self._wait_healthy()
        return self.url

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"server did not become healthy: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Terminates the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def metrics_text(url: str) -> str:
    """The server's /metrics page."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        return response.read().decode()


def metric(url: str, name: str, labels: str = "") -> float:
    """One sample from /metrics, e.g. ``metric(url, "lipstream_stage_cpu_seconds_total",
    'stage="render"')``; summed over the ``worker`` label of a server with several workers."""
    wanted = _labels(labels)
    values = [
        sample.value
        for family in text_string_to_metric_families(metrics_text(url))
        for sample in family.samples
        if sample.name == name
        and {k: v for k, v in sample.labels.items() if k != "worker"} == wanted
    ]
    if not values:
        raise KeyError(f"{name}{{{labels}}}" if labels else name)
    return sum(values)


def _labels(text: str) -> dict[str, str]:
    if not text:
        return {}
    family = next(iter(text_string_to_metric_families(f"x{{{text}}} 0\n")))
    return dict(family.samples[0].labels)
