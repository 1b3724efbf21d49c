"""``POST /api/dub`` and ``/api/jobs/ID``: dubbing as asynchronous jobs (``server/dub_jobs.py``).

The upload is multipart: files ``video`` and ``audio``, optional fields ``sync_mode``
(``cut_off``, ``loop``, ``pad``) and ``face`` (``auto`` or ``X,Y``). It is streamed to the job's
folder in chunks, bounded as ``guard.read_body`` bounds bodies (``Content-Length`` checked before a
byte is read, the count stopped at the limit, a deadline for the whole body), and never held in
memory. The inputs are probed before the job is accepted, so a file that is not a video, has no
video or audio stream, is too long or shows no face gets its 4xx at once, and the job's 202 means
it will run.

Every route needs the publisher token: the guard asks it of ``POST`` and ``DELETE``; the two
``GET`` routes check it here, since a job's result is the uploader's own media.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from aiohttp.helpers import parse_mimetype
from lipstream.dub.errors import DubError, DubTooLongError
from lipstream.dub.media import SYNC_MODES

from ..dub_jobs import DubJob, DubJobs, DubLimits, JobLimitError
from .guard import Role, role

logger = logging.getLogger(__name__)

UPLOAD_TIMEOUT_S = 600.0  # 200 MB at ~3 Mbit/s; a body still incomplete then is stalled
CHUNK_BYTES = 256 * 1024
MAX_FIELD_BYTES = 100  # sync_mode and face are a few characters
FILE_FIELDS = ("video", "audio")
OPTION_FIELDS = ("sync_mode", "face")
FACE_SAMPLES = 5  # frames spread over the video the upload check looks for a face in


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _publisher(request: web.Request) -> web.Response | None:
    if role(request) < Role.PUBLISH:
        return web.Response(
            status=401,
            text="a valid token is needed: Authorization: Bearer TOKEN\n",
            headers={"WWW-Authenticate": 'Bearer realm="lipstream", error="invalid_token"'},
        )
    return None


async def post_dub(request: web.Request) -> web.Response:
    """Accepts a dub job: ``202 {"job": ID}``, or a 4xx saying what was wrong."""
    jobs = request.app[DubJobs.KEY]
    limit = jobs.limits.max_upload_bytes
    if not request.content_type.startswith("multipart/"):
        return _error(415, "send multipart/form-data with files 'video' and 'audio'")
    if not parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("boundary"):
        return _error(400, "the multipart Content-Type has no boundary")
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"the upload is larger than {limit} bytes")
    try:
        job = jobs.reserve()
    except JobLimitError as exc:
        return _error(exc.status, str(exc))
    try:
        fields = await asyncio.wait_for(_receive(request, job, limit), UPLOAD_TIMEOUT_S)
        args = _child_args(job, fields, jobs.limits)
        await asyncio.get_running_loop().run_in_executor(
            None, check_inputs, job.folder / "video", job.folder / "audio", jobs.limits
        )
    except JobLimitError as exc:
        jobs.discard(job)
        return _error(exc.status, str(exc))
    except asyncio.TimeoutError:
        jobs.discard(job)
        return _error(408, f"the upload did not arrive within {UPLOAD_TIMEOUT_S:.0f} s")
    except (ValueError, AssertionError, KeyError) as exc:  # aiohttp's parser on bad framing
        jobs.discard(job)
        return _error(400, f"the multipart body is malformed: {exc}"[:200])
    except BaseException:
        jobs.discard(job)
        raise
    jobs.start(job, args)
    return web.json_response({"job": job.job_id}, status=202)


async def _receive(request: web.Request, job: DubJob, limit: int) -> dict[str, str]:
    """Streams the file parts into the job's folder; returns the option fields."""
    reader = await request.multipart()
    received = 0
    options: dict[str, str] = {}
    async for part in reader:
        name = getattr(part, "name", None)
        if name in FILE_FIELDS:
            with (job.folder / name).open("wb") as sink:
                while chunk := await part.read_chunk(CHUNK_BYTES):  # type: ignore[union-attr]
                    received += len(chunk)
                    if received > limit:
                        raise JobLimitError(413, f"the upload is larger than {limit} bytes")
                    sink.write(chunk)
        elif name in OPTION_FIELDS:
            value = bytearray()
            while chunk := await part.read_chunk(MAX_FIELD_BYTES):  # type: ignore[union-attr]
                value.extend(chunk)
                if len(value) > MAX_FIELD_BYTES:
                    raise JobLimitError(400, f"the field {name!r} is too long")
            options[name] = value.decode("utf-8", "replace").strip()
    for name in FILE_FIELDS:
        if not (job.folder / name).is_file():
            raise JobLimitError(400, f"no file field named {name!r} in the upload")
    return options


def _child_args(job: DubJob, fields: dict[str, str], limits: DubLimits) -> list[str]:
    mode = fields.get("sync_mode", "cut_off")
    if mode not in SYNC_MODES:
        raise JobLimitError(400, f"sync_mode must be one of {', '.join(SYNC_MODES)}")
    face = fields.get("face", "auto")
    if face != "auto":
        try:
            x, y = (float(v) for v in face.split(","))
        except ValueError:
            raise JobLimitError(400, "face must be auto or X,Y in pixels") from None
        face = f"{x},{y}"
    return [
        "--video", str(job.folder / "video"), "--audio", str(job.folder / "audio"),
        "--sync-mode", mode, "--face", face,
        "--max-duration-s", str(limits.max_duration_s),
    ]  # fmt: skip


def check_inputs(video: Path, audio: Path, limits: DubLimits) -> None:
    """The upload's quick checks, on a worker thread.

    Both inputs decode, neither is too long, and the video shows a face in at least one of
    ``FACE_SAMPLES`` frames spread over it.

    Raises:
        JobLimitError: 413 for a too-long input, 422 for anything that cannot be dubbed.
    """
    from lipstream.dub.media import probe_video, read_audio
    from lipstream.dub.track import any_face

    try:
        info = probe_video(video)
        if info.duration_s is not None and info.duration_s > limits.max_duration_s:
            raise DubTooLongError(
                f"the video is {info.duration_s:.0f} s long; "
                f"at most {limits.max_duration_s:.0f} s are accepted"
            )
        seconds = read_audio(audio, 8000).shape[1] / 8000  # a cheap rate: only its length counts
        if seconds > limits.max_duration_s:
            raise DubTooLongError(
                f"the audio is {seconds:.0f} s long; at most {limits.max_duration_s:.0f} s are "
                "accepted"
            )
        if not any_face(video, info, FACE_SAMPLES):
            raise JobLimitError(422, "no face was found in the video")
    except DubTooLongError as exc:
        raise JobLimitError(413, _no_paths(str(exc), video, audio)) from exc
    except DubError as exc:
        raise JobLimitError(422, _no_paths(str(exc), video, audio)) from exc


def _no_paths(message: str, *paths: Path) -> str:
    """The message with the server's own file paths replaced by the field names."""
    for path in paths:
        message = message.replace(f" {path}", "")
    return message


def _job_of(request: web.Request) -> DubJob | web.Response:
    """The job the URL names, or the 401/404 that says why the caller gets none."""
    refused = _publisher(request)
    if refused is not None:
        return refused
    job = request.app[DubJobs.KEY].get(request.match_info["job_id"])
    return _error(404, "no such job") if job is None else job


async def get_job(request: web.Request) -> web.Response:
    """A job's status (queued, running, done, failed, cancelled), stage and progress 0..1."""
    job = _job_of(request)
    if isinstance(job, web.Response):
        return job
    return web.json_response(job.view())


async def get_result(request: web.Request) -> web.StreamResponse:
    """The dubbed MP4 of a finished job; 409 while it runs, 422 with the reason if it failed."""
    job = _job_of(request)
    if isinstance(job, web.Response):
        return job
    if job.status == "failed":
        return _error(422, job.error or "the job failed")
    if job.status != "done" or not job.result.is_file():
        return _error(409, f"the job is {job.status}; its result is not ready")
    return web.FileResponse(
        job.result,
        headers={
            "Content-Type": "video/mp4",
            "Content-Disposition": f'attachment; filename="dub-{job.job_id}.mp4"',
        },
    )


async def delete_job(request: web.Request) -> web.Response:
    """Cancels a job that has not ended and deletes it and its files."""
    if not await request.app[DubJobs.KEY].delete(request.match_info["job_id"]):
        return _error(404, "no such job")
    return web.Response(status=204)


def add_dub_routes(app: web.Application, limits: DubLimits | None = None) -> None:
    """Registers the dub routes and the job store on ``app``; the store closes on shutdown.

    ``limits`` default to ``DubLimits.from_env()``.
    """
    app[DubJobs.KEY] = DubJobs(limits or DubLimits.from_env())

    async def stop_jobs(app: web.Application) -> None:
        await app[DubJobs.KEY].close()

    app.on_shutdown.append(stop_jobs)
    app.router.add_post("/api/dub", post_dub)
    app.router.add_get("/api/jobs/{job_id}", get_job)
    app.router.add_get("/api/jobs/{job_id}/result", get_result)
    app.router.add_delete("/api/jobs/{job_id}", delete_job)
