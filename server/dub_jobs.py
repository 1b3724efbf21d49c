"""Dub jobs of ``POST /api/dub``: bounded in number, each run in a low-priority child process.

A job owns one private directory (its uploads and its result) under the server's job root; the
directory goes when the job is deleted, fails, is cancelled, expires or the server stops, so a job
leaves nothing behind. Jobs run one at a time by default (``DubLimits.max_running``): on two cores
a second concurrent dub would only halve both and take the live sessions' share. The child
(``lipstream.dub.child``) runs at nice 10, off this process's event loop and GIL.

All methods are called on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from .tasks import TaskOwner

logger = logging.getLogger(__name__)

LIMIT_ENV = {  # environment overrides of DubLimits, read when the app is made
    "max_jobs": "LIPSTREAM_DUB_MAX_JOBS",
    "max_upload_bytes": "LIPSTREAM_DUB_MAX_BYTES",
    "max_duration_s": "LIPSTREAM_DUB_MAX_SECONDS",
}
KILL_TIMEOUT_S = 5.0  # a child that ignores SIGTERM this long is killed
RESULT_NAME = "dubbed.mp4"
STATES = ("queued", "running", "done", "failed", "cancelled")


class JobLimitError(Exception):
    """A request breaks a job limit; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DubLimits:
    """Bounds on dub jobs.

    Attributes:
        max_jobs: jobs kept at once, queued, running or finished (429 beyond).
        max_running: jobs whose child runs at once; the rest wait in order.
        max_upload_bytes: the whole multipart body (413 beyond), streamed to disk.
        max_duration_s: longest video or audio accepted (413 beyond).
        result_ttl_s: a finished job (and its MP4) is deleted this long after it ended.
    """

    max_jobs: int = 4
    max_running: int = 1
    max_upload_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 600.0
    result_ttl_s: float = 3600.0

    @classmethod
    def from_env(cls) -> DubLimits:
        """The defaults, with any ``LIMIT_ENV`` variable set in the environment applied."""
        values: dict[str, Any] = {}
        for name, var in LIMIT_ENV.items():
            if os.environ.get(var):
                values[name] = type(getattr(cls, name))(float(os.environ[var]))
        return cls(**values)


@dataclass
class DubJob:
    """One job's state, as ``GET /api/jobs/ID`` shows it (``view()``)."""

    job_id: str
    folder: Path
    status: str = "queued"
    stage: str = ""
    progress: float = 0.0
    error: str | None = None
    summary: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    ended: float | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def result(self) -> Path:
        """Where the child writes the MP4."""
        return self.folder / RESULT_NAME

    def view(self) -> dict[str, Any]:
        """The JSON body of ``GET /api/jobs/ID``."""
        body: dict[str, Any] = {
            "job": self.job_id,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 3),
        }
        if self.error is not None:
            body["error"] = self.error
        if self.summary is not None:
            body["summary"] = self.summary
        return body


class DubJobs:
    """The server's dub jobs; created on startup, ``close()``d on shutdown."""

    KEY: ClassVar[web.AppKey[DubJobs]] = web.AppKey("lipstream_dub_jobs")

    def __init__(self, limits: DubLimits, root: Path | None = None) -> None:
        self.limits = limits
        self.root = Path(tempfile.mkdtemp(prefix="lipstream-dub-jobs-", dir=root))
        self._jobs: dict[str, DubJob] = {}
        self._running = asyncio.Semaphore(limits.max_running)
        self._tasks = TaskOwner("dub-jobs")

    def get(self, job_id: str) -> DubJob | None:
        """The job with this id, or None."""
        self._expire()
        return self._jobs.get(job_id)

    def reserve(self) -> DubJob:
        """A new queued job with an empty folder for its uploads.

        Raises:
            JobLimitError: 429, ``max_jobs`` jobs are already kept.
        """
        self._expire()
        if len(self._jobs) >= self.limits.max_jobs:
            raise JobLimitError(
                429,
                f"{len(self._jobs)} dub jobs are kept already (at most {self.limits.max_jobs}); "
                "delete a finished one or wait",
            )
        job_id = secrets.token_hex(8)
        folder = self.root / job_id
        folder.mkdir()
        job = DubJob(job_id, folder)
        self._jobs[job_id] = job
        return job

    def start(self, job: DubJob, args: list[str]) -> None:
        """Runs ``lipstream.dub.child`` with ``args`` for ``job`` when a running slot frees."""
        self._tasks.start(job.job_id, self._run(job, args))

    async def _run(self, job: DubJob, args: list[str]) -> None:
        async with self._running:
            if job.status != "queued":  # deleted while it waited
                return
            self._set(job, "running")
            try:
                job.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "lipstream.dub.child",
                    *args,
                    "-o",
                    str(job.result),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            except OSError as exc:
                job.error = f"the dub process could not start: {exc}"
                self._set(job, "failed")
                _remove_folder(job)
                return
            try:
                await self._follow(job, job.process)
            finally:
                if job.process.returncode is None:
                    await _stop(job.process)
                job.process = None

    async def _follow(self, job: DubJob, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        error: str | None = None
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "error" in message:
                error = str(message["error"])
            elif "summary" in message:
                job.summary = message["summary"]
            elif "stage" in message:
                job.stage = str(message["stage"])
                done, total = int(message["done"]), max(int(message["total"]), 1)
                share = min(done / total, 1.0)  # tracking is about a third of the work
                job.progress = share / 3 if job.stage == "track" else 1 / 3 + 2 * share / 3
        code = await process.wait()
        if job.status != "running":  # cancelled meanwhile
            return
        if code == 0 and job.result.is_file():
            job.progress = 1.0
            self._set(job, "done")
            return
        # The child names the files by their paths; the client knows them as the fields.
        job.error = (error or f"the dub process exited with code {code}").replace(
            f"{job.folder}{os.sep}", ""
        )
        self._set(job, "failed")
        _remove_folder(job)  # a failed job says why and keeps no files

    def _set(self, job: DubJob, status: str) -> None:
        logger.info("DubJob(%s) %s -> %s", job.job_id, job.status, status)
        job.status = status
        if status in ("done", "failed", "cancelled"):
            job.ended = time.monotonic()

    async def delete(self, job_id: str) -> bool:
        """Cancels the job if it has not ended, and removes it and its files; False if unknown."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        if job.status in ("queued", "running"):
            self._set(job, "cancelled")
        if job.process is not None and job.process.returncode is None:
            await _stop(job.process)
        _remove_folder(job)
        return True

    def discard(self, job: DubJob) -> None:
        """Forgets a job whose upload failed, and its files."""
        self._jobs.pop(job.job_id, None)
        _remove_folder(job)

    def _expire(self) -> None:
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if job.ended is not None and now - job.ended > self.limits.result_ttl_s:
                self._jobs.pop(job.job_id, None)
                _remove_folder(job)

    async def close(self) -> None:
        """Stops every child and removes the job root (server shutdown)."""
        for job_id in list(self._jobs):
            await self.delete(job_id)
        await self._tasks.cancel_all()
        shutil.rmtree(self.root, ignore_errors=True)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after ``KILL_TIMEOUT_S``; waits for the exit either way."""
    try:
        process.terminate()
        await asyncio.wait_for(process.wait(), KILL_TIMEOUT_S)
    except ProcessLookupError:
        return
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()


def _remove_folder(job: DubJob) -> None:
    shutil.rmtree(job.folder, ignore_errors=True)
