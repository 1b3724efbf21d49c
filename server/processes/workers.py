"""The worker processes behind the front: start them, watch them, restart them, stop them.

One process per core, because a single Python process is GIL-bound at one core however many
sessions it runs, and sessions are independent. Each worker serves ``create_app`` on a unix socket
in a temporary folder this pool owns, so workers need no ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ..options import ServeOptions
from ..tasks import TaskOwner
from .worker import options_to_json

logger = logging.getLogger(__name__)

WORKER_URL = "http://worker"  # the host is ignored: the connector dials the worker's socket
START_TIMEOUT_S = 180.0  # the first start builds the default avatar (MediaPipe init included)
STOP_TIMEOUT_S = 5.0  # a worker closes its sessions in well under a second, then exits
RESTART_DELAY_S = 1.0  # a worker that dies at once is not restarted in a hot loop
HEALTH_POLL_S = 0.2
QUERY_TIMEOUT = aiohttp.ClientTimeout(total=5)


class WorkerStartError(RuntimeError):
    """A worker exited or stayed silent before answering ``/healthz``."""


@dataclass(eq=False)
class Worker:
    """One worker process and the HTTP client that reaches it over its unix socket."""

    index: int
    socket_path: Path
    http: aiohttp.ClientSession | None = None
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0  # times it was started again after exiting

    @property
    def prefix(self) -> str:
        """Starts every session and viewer id this worker makes, so the front can route by id."""
        return f"w{self.index}-"

    @property
    def client(self) -> aiohttp.ClientSession:
        """The HTTP client (exists between ``WorkerPool.start`` and ``stop``)."""
        assert self.http is not None, "the pool is not started"
        return self.http

    async def get_json(self, path: str) -> Any:
        """GETs ``path``; raises ``aiohttp.ClientError`` or ``asyncio.TimeoutError``."""
        async with self.client.get(WORKER_URL + path, timeout=QUERY_TIMEOUT) as response:
            response.raise_for_status()
            return await response.json()


MAX_SOCKET_PATH = 100  # bytes; Linux's sun_path holds 108 with its NUL


def socket_folder() -> Path:
    """A new private (0700) folder for the workers' sockets.

    Under the temporary directory, unless that is so deep that a socket path in it would not fit a
    unix socket address (a long ``TMPDIR``): then under /tmp.
    """
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) + len("/lipstream-workers-XXXXXXXX/w00.sock") > MAX_SOCKET_PATH:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="lipstream-workers-", dir=base))


def worker_cpus(count: int) -> list[int | None]:
    """The core each of ``count`` workers keeps to, or None for each where they are not pinned.

    With a worker for every core this process may use, worker i keeps to core i (round robin if
    there are more workers than cores). A worker's threads (event loop, sessions, codecs) then
    share one core's caches instead of wandering. Four sessions with the probe on two cores, ten
    interleaved pairs, pinned against not: median lips 160 against 182 ms, lowest fps 23.4 against
    22.65, 0.318 against 0.325 server cores per session; one session unchanged (README, "Workers
    keep to their cores"). With fewer workers than cores they are left free, so that a worker's
    threads can spread over the spare cores.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if count < 2 or count < len(cpus):
        return [None] * count
    return [cpus[i % len(cpus)] for i in range(count)]


def pin(pid: int, cpu: int) -> None:
    """Keeps every thread of process ``pid`` to ``cpu`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), {cpu})


class WorkerPool:
    """Runs ``count`` workers with ``options`` (each with its own id prefix) and keeps them up."""

    def __init__(self, options: ServeOptions, count: int, verbose: bool = False) -> None:
        self._options = options
        self._verbose = verbose
        self._folder = socket_folder()
        self.workers = [Worker(i, self._folder / f"w{i}.sock") for i in range(count)]
        self._cpus = worker_cpus(count)
        self._tasks = TaskOwner("WorkerPool")
        self._stopping = False

    async def start(self) -> None:
        """Starts worker 0, then the others together; raises ``WorkerStartError``.

        Worker 0 goes first because it builds the default avatar into the on-disk cache; the
        others then load it from there instead of racing to build it too.
        """
        for worker in self.workers:
            connector = aiohttp.UnixConnector(path=str(worker.socket_path))
            worker.http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        try:
            await self._launch(self.workers[0])
            await asyncio.gather(*(self._launch(w) for w in self.workers[1:]))
        except BaseException:
            await self.stop()
            raise
        for worker in self.workers:
            self._tasks.start(f"supervise-w{worker.index}", self._supervise(worker))

    async def _launch(self, worker: Worker) -> None:
        options = dataclasses.replace(self._options, id_prefix=worker.prefix)
        command = [
            sys.executable, "-m", "lipstream.server.processes.worker",
            "--socket", str(worker.socket_path), "--options", options_to_json(options),
        ]  # fmt: skip
        if self._verbose:
            command.append("--verbose")
        # Own session: a terminal's Ctrl-C reaches the front only, which then stops the workers
        # itself (a worker exiting on its own would look like a crash and be restarted).
        # Environment (OPENBLAS_NUM_THREADS=1 ...) and stdout/stderr are inherited.
        worker.process = await asyncio.create_subprocess_exec(*command, start_new_session=True)
        cpu = self._cpus[worker.index]
        if cpu is not None:  # at once: the threads it starts while importing inherit it
            pin(worker.process.pid, cpu)
        try:
            await self._wait_healthy(worker, worker.process)
        except BaseException:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
            raise
        logger.info("Worker %d ready (pid %d, core %s)", worker.index, worker.process.pid, cpu)

    async def _wait_healthy(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if process.returncode is not None:
                raise WorkerStartError(
                    f"worker {worker.index} exited with code {process.returncode} before it "
                    "answered /healthz (its log is above)"
                )
            try:
                await worker.get_json("/healthz")
                return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if loop.time() > deadline:
                raise WorkerStartError(
                    f"worker {worker.index} did not answer /healthz within {START_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(HEALTH_POLL_S)

    async def _supervise(self, worker: Worker) -> None:
        """Restarts ``worker`` whenever it exits; its sessions are lost, the others keep going."""
        while True:
            assert worker.process is not None
            code = await worker.process.wait()
            if self._stopping:
                return
            logger.error(
                "Worker %d (pid %d) exited with code %d; its sessions are lost; restarting it",
                worker.index, worker.process.pid, code,
            )  # fmt: skip
            await asyncio.sleep(RESTART_DELAY_S)
            worker.restarts += 1
            try:
                await self._launch(worker)
            except WorkerStartError as exc:
                logger.error("%s; trying again", exc)

    async def stop(self) -> None:
        """SIGTERMs the workers, kills any still running after ``STOP_TIMEOUT_S``; idempotent.

        The workers close their sessions on SIGTERM. The socket folder is removed.
        """
        self._stopping = True
        await self._tasks.cancel_all()
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            for process in running:
                if process.returncode is None:
                    logger.warning("Worker pid %d did not stop; killing it", process.pid)
                    process.kill()
                    await process.wait()
        for worker in self.workers:
            if worker.http is not None:
                await worker.http.close()
        shutil.rmtree(self._folder, ignore_errors=True)
