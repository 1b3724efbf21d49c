"""The aiohttp application: pages, signaling, avatars API and operations endpoints on one port."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import cv2
from aiohttp import web
from aiohttp.helpers import parse_mimetype
from lipstream.avatar import AvatarError, default_photo

from ..avatars import MAX_UPLOAD_BYTES, UploadError, check_photo_bytes
from ..media import aiortc_tuning
from ..options import ServeOptions
from ..state import ServerState
from .dub import add_dub_routes
from .guard import Access, Role, role, security_middleware
from .ice import browser_ice_servers
from .signaling import close_viewers, end_session, whep_delete, whep_post, whip_delete, whip_post
from .websocket import close_sockets, ws_events, ws_ingest

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"  # beside server/, installed or in the repo
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form boundaries and headers around the photo
UPLOAD_TIMEOUT_S = 120.0  # 10 MB over a slow uplink; a body still incomplete then is stalled


async def _page(name: str) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / name, headers={"Cache-Control": "no-cache"})


async def talk_page(request: web.Request) -> web.FileResponse:
    """The talk page: microphone in, avatar out."""
    return await _page("talk.html")


async def viewer_page(request: web.Request) -> web.FileResponse:
    """The viewer page for OBS: the avatar alone, full window."""
    return await _page("viewer.html")


async def rig_page(request: web.Request) -> web.FileResponse:
    """The rig demo: a vector face drawn from the channel's events alone."""
    return await _page("rig.html")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the loop answers and the default avatar is ready."""
    state = request.app[ServerState.KEY]
    return web.json_response({"status": "ok", "sessions": len(state.sessions.by_id)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    state = request.app[ServerState.KEY]
    return web.Response(body=state.metrics.exposition(), content_type="text/plain", charset="utf-8")


async def config(request: web.Request) -> web.Response:
    """What the pages need to know about this server."""
    state = request.app[ServerState.KEY]
    body = {
        "fps": state.options.fps,
        "driver": state.options.driver,
        "default_avatar": state.avatars.default_id,
        "avatars": state.avatars.ids(),
        "ice_servers": browser_ice_servers(state.options),
    }
    return web.json_response(visible_config(body, role(request)))


def visible_config(body: dict[str, Any], seen_by: Role) -> dict[str, Any]:
    """``/api/config`` as ``seen_by`` may see it: uploaded avatars only for publishers."""
    if seen_by < Role.PUBLISH:
        body = {**body, "avatars": [a for a in body["avatars"] if a == body["default_avatar"]]}
    return body


async def session_stats(request: web.Request) -> web.Response:
    """Live figures of one session, for the talk page's readout."""
    state = request.app[ServerState.KEY]
    session = state.sessions.by_id.get(request.match_info["session_id"])
    if session is None:
        return web.json_response({"error": "no such session"}, status=404)
    return web.json_response(session.stats())


async def session_frames(request: web.Request) -> web.Response:
    """Per-frame server timestamps of one session (CLOCK_MONOTONIC), for latency stage splits."""
    state = request.app[ServerState.KEY]
    session = state.sessions.by_id.get(request.match_info["session_id"])
    if session is None:
        return web.json_response({"error": "no such session"}, status=404)
    fields = ["index", "ready_at", "posed_at", "rendered_at"]
    rows = [[t.index, t.ready_at, t.posed_at, t.rendered_at] for t in session.timeline]
    return web.json_response({"fps": session.clock.fps, "fields": fields, "frames": rows})


async def upload_avatar(request: web.Request) -> web.Response:
    """Accepts a multipart photo upload (field ``photo``) and builds an avatar from it."""
    state = request.app[ServerState.KEY]
    try:
        data = await _read_photo_field(request)
        check_photo_bytes(data)
        built = await state.avatars.add(data)
    except UploadError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    except AvatarError as exc:
        return web.json_response({"error": str(exc)}, status=422)
    return web.json_response({"id": built.avatar_id, "notes": list(built.notes)}, status=201)


async def _read_photo_field(request: web.Request) -> bytes:
    """The ``photo`` field: bounded by Content-Length up front, then while read, with a deadline."""
    if not request.content_type.startswith("multipart/"):
        raise UploadError(415, "send the photo as multipart/form-data in a field named 'photo'")
    if not parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("boundary"):
        raise UploadError(400, "the multipart Content-Type has no boundary")
    limit = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise UploadError(413, f"the upload is larger than {limit} bytes")
    try:
        return await asyncio.wait_for(_photo_part(request), UPLOAD_TIMEOUT_S)
    except UploadError:
        raise
    except asyncio.TimeoutError as exc:
        raise UploadError(
            408, f"the upload did not arrive within {UPLOAD_TIMEOUT_S:.0f} s"
        ) from exc
    except (
        ValueError,
        AssertionError,
        KeyError,
    ) as exc:  # aiohttp's multipart parser on bad framing
        raise UploadError(400, f"the multipart body is malformed: {exc}"[:200]) from exc


async def _photo_part(request: web.Request) -> bytes:
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "name", None) != "photo":
            continue
        data = bytearray()
        while chunk := await part.read_chunk():  # type: ignore[union-attr]
            data.extend(chunk)
            if len(data) > MAX_UPLOAD_BYTES:
                raise UploadError(413, f"the photo is larger than {MAX_UPLOAD_BYTES} bytes")
        return bytes(data)
    raise UploadError(400, "no field named 'photo' in the upload")


async def _load_default_avatar(app: web.Application) -> None:
    state = app[ServerState.KEY]
    photo = state.options.avatar_photo or default_photo()
    built = await state.avatars.add(Path(photo))
    state.avatars.default_id = built.avatar_id
    for note in built.notes:
        logger.info("Avatar %s: %s", built.avatar_id, note)
    logger.info("Default avatar %s from %s", built.avatar_id, photo)


async def _close_everything(app: web.Application) -> None:
    state = app[ServerState.KEY]
    state.closing = True  # no idle face starts while everything closes
    await close_sockets(app)
    for session in list(state.sessions.by_id.values()):
        await end_session(state, session, "server shutting down")
    await close_viewers(state)
    if state.publishing is not None:
        await state.publishing.close()  # DELETEs on the media server while the loop still runs
    await state.tasks.cancel_all()
    for channel in list(state.channels.values()):
        if channel.idle is not None:
            await channel.idle.close()
        channel.close()
    state.avatars.close()


def add_page_routes(app: web.Application) -> None:
    """The pages and their static files, served the same by the single app and the front."""
    app.router.add_get("/", talk_page)
    app.router.add_get("/viewer", viewer_page)
    app.router.add_get("/rig", rig_page)
    app.router.add_static("/static", WEB_DIR)


def create_app(options: ServeOptions) -> web.Application:
    """Builds the app; the default avatar is prepared at startup (errors then stop the server)."""
    aiortc_tuning.apply()
    # Each session renders on its own thread; cv2's pool on top splits 368 px images across threads
    # for more CPU in all: upscale + blend of the default avatar's view took 1.7 ms of process CPU
    # per frame on two cv2 threads and 0.9 ms on one (median of 300 calls, 2026-11-30).
    cv2.setNumThreads(1)
    access = Access(options.token, options.viewer_token, options.allow_origins)
    app = web.Application(
        client_max_size=MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES,
        middlewares=[security_middleware(access)],
    )
    app[ServerState.KEY] = ServerState(options)
    app.on_startup.append(_load_default_avatar)
    app.on_shutdown.append(_close_everything)
    add_page_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/config", config)
    app.router.add_post("/api/avatars", upload_avatar)
    app.router.add_post("/whip", whip_post)
    app.router.add_delete("/whip/{session_id}", whip_delete)
    app.router.add_get("/whip/{session_id}/stats", session_stats)
    app.router.add_get("/whip/{session_id}/frames", session_frames)
    app.router.add_get("/ws/ingest", ws_ingest)
    app.router.add_get("/ws/events", ws_events)
    app.router.add_post("/whep/{channel}", whep_post)
    app.router.add_delete("/whep/{channel}/{viewer_id}", whep_delete)
    add_dub_routes(app)
    return app
