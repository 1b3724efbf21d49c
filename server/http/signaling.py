"""WHIP ingest with a return path, and WHEP egress for viewers.

WHIP (RFC 9725): ``POST /whip`` with an SDP offer starts a session; the answer comes back with 201
and ``Location: /whip/<id>`` (absolute on this node with ``--public-url``, for a load balancer in
front); ``DELETE`` on that URL ends it. At ``--max-sessions`` a new offer gets 503 with
``Retry-After``, so a balancer tries another node. The publisher's connection also
carries the avatar back when its offer has receiving video/audio m-lines. WHEP: ``POST
/whep/<channel>`` attaches a viewer to the channel, whoever speaks on it (the idle face while
nobody does); viewers never disturb the speaker and stay across speakers. Either connection may
open an RTCDataChannel labelled ``events``: the channel's per-frame events arrive on it.

Every offer is read with a bound and a deadline (``guard.read_body``) and parsed before any
connection exists; whatever aiortc raises on an offer it cannot use is a 400 with its reason.
"""

from __future__ import annotations

import asyncio
import codecs
import logging

from aiohttp import WSCloseCode, web
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from ..media.channel import Channel
from ..media.ingest import pump_track
from ..media.low_latency import decode_audio_on_arrival
from ..media.peer import PeerConnection
from ..media.session import AvatarSession
from ..registry import CHANNEL_PATTERN, PLACEMENT_HEADER, RETRY_AFTER_S, RegistryError
from ..state import ServerState
from .guard import read_body
from .ice import server_ice_servers
from .sdp_check import (
    MAX_OFFER_BYTES,
    OfferError,
    OfferShape,
    check_publisher_offer,
    check_viewer_offer,
)

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0  # ICE + DTLS on a real network; a client that never connects is dropped
SDP_CONTENT_TYPE = "application/sdp"
EVENTS_LABEL = "events"  # the RTCDataChannel label that carries the per-frame events
EVENTS_BUFFERED_BYTES = 256 * 1024  # a data channel this far behind skips events (about 10 s)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


async def read_offer(request: web.Request) -> str:
    """The offer's text: application/sdp, at most ``MAX_OFFER_BYTES``, in a known charset."""
    if request.content_type != SDP_CONTENT_TYPE:
        raise web.HTTPUnsupportedMediaType(
            text=f"expected Content-Type {SDP_CONTENT_TYPE}, got {request.content_type or 'none'}\n"
        )
    charset = request.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise web.HTTPBadRequest(text=f"unknown charset {charset[:40]!r}; send UTF-8\n") from exc
    body = await read_body(request, MAX_OFFER_BYTES)
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"the SDP offer is not valid {charset} text\n") from exc


def new_peer_connection(state: ServerState) -> RTCPeerConnection:
    """A peer connection using the configured STUN/TURN servers."""
    servers = [RTCIceServer(**server) for server in server_ice_servers(state.options)]
    return PeerConnection(RTCConfiguration(iceServers=servers) if servers else None)


async def _answer(pc: RTCPeerConnection, offer_sdp: str) -> str:
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


async def whip_post(request: web.Request) -> web.Response:
    """Starts a speaking session from a WHIP offer."""
    state = request.app[ServerState.KEY]
    offer_sdp = await read_offer(request)
    try:
        shape = check_publisher_offer(offer_sdp)
    except OfferError as exc:
        state.metrics.sessions_rejected.labels("bad_offer").inc()
        return _error(400, str(exc))
    avatar_id = request.query.get("avatar") or state.avatars.default_id
    if avatar_id is None or not await state.avatars.find(avatar_id):
        return _error(404, f"unknown avatar {avatar_id!r}; upload a photo to /api/avatars first")
    session_id = state.new_id()
    channel = request.query.get("channel") or session_id
    try:
        state.sessions.reserve(channel, request.headers.get(PLACEMENT_HEADER))
    except RegistryError as exc:
        state.metrics.sessions_rejected.labels(str(exc.status)).inc()
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}
        return _error(exc.status, str(exc), **headers)
    try:
        session = state.new_session(session_id, channel, avatar_id)
    except BaseException:
        state.sessions.release(channel)
        raise
    state.sessions.add(session)
    state.join(session)
    state.metrics.sessions.set(len(state.sessions.by_id))
    try:
        answer_sdp = await _connect_publisher(state, session, offer_sdp, shape)
    except Exception as exc:  # aiortc raises ValueError and several of its own errors on bad SDP
        logger.info("Session(%s) offer refused: %s", session_id, exc)
        await end_session(state, session, f"bad offer: {exc}")
        state.metrics.sessions_rejected.labels("bad_offer").inc()
        return _error(400, f"the SDP offer could not be used: {exc}")
    logger.info("Session(%s) started on channel %r with avatar %s", session_id, channel, avatar_id)
    return web.Response(
        status=201,
        text=answer_sdp,
        content_type=SDP_CONTENT_TYPE,
        headers={"Location": state.location(f"/whip/{session_id}")},
    )


async def _connect_publisher(
    state: ServerState, session: AvatarSession, offer_sdp: str, shape: OfferShape
) -> str:
    pc = new_peer_connection(state)
    connected = asyncio.Event()
    session.own(pc)

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        logger.info("Session(%s) connection -> %s", session.id, pc.connectionState)
        if pc.connectionState == "connected":
            connected.set()
        elif pc.connectionState in ("failed", "closed") and not session.closed.is_set():
            session.tasks.start(
                "end", end_session(state, session, f"connection {pc.connectionState}")
            )

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            session.tasks.start("ingest", _run_publisher(state, session, track, connected))

    listen_on_data_channel(pc, session.output)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    decode_audio_on_arrival(pc)
    session.attach(pc, video=shape.receives_video, voice=shape.receives_audio)
    return await _answer(pc, offer_sdp)


def listen_on_data_channel(pc: RTCPeerConnection, channel: Channel) -> None:
    """Sends ``channel``'s events on the data channel labelled ``events`` that ``pc`` opens."""

    @pc.on("datachannel")
    def _on_data_channel(data: RTCDataChannel) -> None:
        if data.label != EVENTS_LABEL:
            return

        def sink(text: str) -> None:
            if data.readyState == "open" and data.bufferedAmount < EVENTS_BUFFERED_BYTES:
                data.send(text)

        channel.add_sink(sink, owner=pc)

        @data.on("close")
        def _on_close() -> None:
            channel.remove_sink(sink)


async def _run_publisher(
    state: ServerState, session: AvatarSession, track: MediaStreamTrack, connected: asyncio.Event
) -> None:
    reason = "the publisher's reader stopped"
    try:
        try:
            await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            reason = f"the client did not connect within {CONNECT_TIMEOUT_S:.0f} s"
        else:
            reason = await pump_track(session, track)
    except Exception as exc:  # a failed worker trip ends this session only, and is logged
        logger.exception("Session(%s) failed", session.id)
        reason = f"the session failed: {exc!r}"
    finally:
        await end_session(state, session, reason)


async def end_session(state: ServerState, session: AvatarSession, reason: str) -> None:
    """Closes ``session``, frees its slot and its WebSocket if it has one; idempotent.

    The channel's viewers stay: the idle face takes over.
    """
    if not session.closed.is_set():
        logger.info("Session(%s) ending: %s", session.id, reason)
    state.sessions.remove(session)
    state.metrics.sessions.set(len(state.sessions.by_id))
    await session.close()
    state.refresh(session.output)
    socket = state.publishers.pop(session.id, None)
    if socket is not None and not socket.closed:
        await socket.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()[:120])


async def whip_delete(request: web.Request) -> web.Response:
    """Ends a session (the WHIP client hung up)."""
    state = request.app[ServerState.KEY]
    session = state.sessions.by_id.get(request.match_info["session_id"])
    if session is None:
        return _error(404, "no such session")
    await end_session(state, session, "the client sent DELETE")
    return web.Response(status=200)


async def whep_post(request: web.Request) -> web.Response:
    """Attaches a viewer to a channel; it sees the idle face until somebody speaks."""
    state = request.app[ServerState.KEY]
    name = request.match_info["channel"]
    if not CHANNEL_PATTERN.match(name):
        return _error(400, "channel must be 1-64 letters, digits, '-' or '_'")
    offer_sdp = await read_offer(request)
    try:
        shape = check_viewer_offer(offer_sdp)
    except OfferError as exc:
        return _error(400, str(exc))
    channel = state.channel(name)
    if len(channel.viewers) >= state.options.max_viewers:
        state.metrics.sessions_rejected.labels("viewers").inc()
        state.refresh(channel)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return _error(503, f"channel {name!r} has its {len(channel.viewers)} viewers", **headers)
    pc = new_peer_connection(state)
    viewer_id = state.new_id()
    listen_on_data_channel(pc, channel)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        channel.add_viewer(pc, video=shape.receives_video, voice=shape.receives_audio)
        answer_sdp = await _answer(pc, offer_sdp)
    except Exception as exc:  # as in whip_post: aiortc's errors on unusable offers vary
        channel.remove_viewer(pc)
        await _close_quietly(pc)
        state.refresh(channel)
        return _error(400, f"the SDP offer could not be used: {exc}")
    state.viewers[viewer_id] = (channel, pc)
    state.metrics.viewers.set(len(state.viewers))
    state.refresh(channel)
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()
        elif pc.connectionState in ("failed", "closed"):
            await _drop_viewer(state, viewer_id)

    async def _drop_unless_connected() -> None:
        try:
            await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            logger.info("Viewer(%s) did not connect within %.0f s", viewer_id, CONNECT_TIMEOUT_S)
            await _drop_viewer(state, viewer_id)

    state.tasks.start(f"viewer-{viewer_id}-connect", _drop_unless_connected())

    return web.Response(
        status=201,
        text=answer_sdp,
        content_type=SDP_CONTENT_TYPE,
        headers={"Location": state.location(f"/whep/{name}/{viewer_id}")},
    )


async def _close_quietly(pc: RTCPeerConnection) -> None:
    """Closes ``pc``; aiortc's close can raise on a half-built connection: logged, not raised."""
    try:
        await pc.close()
    except Exception:
        logger.warning("Closing a viewer's peer connection failed", exc_info=True)


async def _drop_viewer(state: ServerState, viewer_id: str) -> None:
    entry = state.viewers.pop(viewer_id, None)
    state.metrics.viewers.set(len(state.viewers))
    if entry is not None:
        channel, pc = entry
        channel.remove_viewer(pc)
        await _close_quietly(pc)
        state.refresh(channel)


async def close_viewers(state: ServerState) -> None:
    """On shutdown: closes every viewer's connection."""
    for viewer_id in list(state.viewers):
        await _drop_viewer(state, viewer_id)


async def whep_delete(request: web.Request) -> web.Response:
    """Detaches a viewer of the channel named in the URL (and no other channel's)."""
    state = request.app[ServerState.KEY]
    viewer_id = request.match_info["viewer_id"]
    entry = state.viewers.get(viewer_id)
    if entry is None or entry[0].name != request.match_info["channel"]:
        return _error(404, "no such viewer on this channel")
    await _drop_viewer(state, viewer_id)
    return web.Response(status=200)
