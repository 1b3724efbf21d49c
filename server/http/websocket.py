"""WebSockets: PCM ingest for voice agents and TTS engines, and per-frame events for rigs.

``GET /ws/ingest?channel=NAME[&avatar=ID][&rate=16000]`` opens a speaking session on ``channel``.
Binary messages carry little-endian s16 mono PCM at ``rate``; text messages carry JSON control:
``{"type": "clear"}`` drops everything queued at once (the voice falls silent and the mouth rests
within two frames) and ``{"type": "end"}`` closes a segment, the connection staying for the next.
The server answers ``session`` once, then ``playback_started``, ``playback_finished`` (with the
position played and whether it was interrupted) and ``queued`` (every 200 ms), and ``error`` for a
message it could not use. Queued audio is capped (``--max-queue-s``): a message beyond the cap is
refused with an error, not buffered. Leaving, or ``DELETE /whip/<id>``, ends the session and the
socket; the channel's viewers stay, watching the idle face.

``GET /ws/events?channel=NAME`` sends the channel's per-frame events as JSON text, one per video
frame, whoever speaks (``realtime/visemes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..media.playout import PcmPlayout, QueueFull
from ..registry import CHANNEL_PATTERN, PLACEMENT_HEADER, RETRY_AFTER_S, RegistryError
from ..state import ServerState
from ..tasks import TaskOwner
from .signaling import end_session

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # aiohttp's default, stated: one message is 131 s at 16 kHz
ALLOWED_RATES_HZ = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
OUTBOX_MESSAGES = 256  # server-to-client messages waiting to be sent; a stalled client loses oldest
EVENTS_BACKLOG = 50  # events (2 s at 25 fps) kept for a slow /ws/events reader; older ones go


class Outbox:
    """Messages for one socket, sent in order by one task; ``put`` never blocks."""

    def __init__(self, limit: int) -> None:
        self._items: deque[str] = deque(maxlen=limit)
        self._ready = asyncio.Event()

    def put(self, text: str) -> None:
        """Queues ``text`` (the oldest waiting message goes when full)."""
        self._items.append(text)
        self._ready.set()

    def put_json(self, message: dict[str, Any]) -> None:
        """Queues ``message`` as JSON text."""
        self.put(json.dumps(message))

    async def send_all(self, socket: web.WebSocketResponse) -> None:
        """Sends queued messages until cancelled or the socket closes."""
        while not socket.closed:
            await self._ready.wait()
            self._ready.clear()
            while self._items and not socket.closed:
                await socket.send_str(self._items.popleft())


def _rate(request: web.Request) -> int:
    try:
        rate = int(request.query.get("rate", "16000"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="rate must be an integer sample rate in Hz\n") from exc
    if rate not in ALLOWED_RATES_HZ:
        raise web.HTTPBadRequest(text=f"rate must be one of {ALLOWED_RATES_HZ}\n")
    return rate


def _channel_name(request: web.Request) -> str:
    name = request.query.get("channel", "")
    if not CHANNEL_PATTERN.match(name):
        raise web.HTTPBadRequest(text="channel must be 1-64 letters, digits, '-' or '_'\n")
    return name


async def ws_ingest(request: web.Request) -> web.StreamResponse:
    """Runs one WebSocket publisher session until it leaves, is deleted, or its playout fails."""
    state = request.app[ServerState.KEY]
    rate = _rate(request)
    channel = _channel_name(request)
    avatar_id = request.query.get("avatar") or state.avatars.default_id
    if avatar_id is None or not await state.avatars.find(avatar_id):
        raise web.HTTPNotFound(text=f"unknown avatar {avatar_id!r}\n")
    socket = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_MESSAGE_BYTES)
    if not socket.can_prepare(request).ok:  # a plain GET: refuse before a session exists
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
    try:
        state.sessions.reserve(channel, request.headers.get(PLACEMENT_HEADER))
    except RegistryError as exc:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}
        return web.Response(status=exc.status, text=f"{exc}\n", headers=headers)
    try:
        session = state.new_session(state.new_id(), channel, avatar_id)
    except BaseException:
        state.sessions.release(channel)
        raise
    state.sessions.add(session)
    state.join(session)
    state.metrics.sessions.set(len(state.sessions.by_id))
    state.publishers[session.id] = socket
    reason = "the WebSocket publisher left"
    try:
        await socket.prepare(request)
        await socket.send_json({"type": "session", "id": session.id, "channel": channel})
        outbox = Outbox(OUTBOX_MESSAGES)
        playout = PcmPlayout(session, rate, state.options.max_queue_s, outbox.put_json)
        tasks = [
            session.tasks.start("playout", playout.run()),
            session.tasks.start("receive", _receive(socket, playout, outbox)),
            session.tasks.start("send", outbox.send_all(socket)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done():
            reason = "the playout stopped"  # its exception, if any, was logged by the task owner
    finally:
        await end_session(state, session, reason)
        if not socket.closed:
            with contextlib.suppress(Exception):
                await socket.close(code=WSCloseCode.GOING_AWAY)
    return socket


async def close_sockets(app: web.Application) -> None:
    """On shutdown: closes every publisher and listener socket, so each handler ends at once."""
    state = app[ServerState.KEY]
    for socket in [*state.publishers.values(), *state.listeners]:
        with contextlib.suppress(Exception):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def _receive(socket: web.WebSocketResponse, playout: PcmPlayout, outbox: Outbox) -> None:
    """Reads PCM and control into ``playout`` until the publisher leaves."""
    async for message in socket:
        if message.type == WSMsgType.BINARY:
            if len(message.data) % 2:
                outbox.put_json({"type": "error", "error": "PCM must be whole s16 samples"})
                continue
            try:
                playout.push(message.data)
            except QueueFull as exc:
                outbox.put_json({"type": "error", "error": str(exc)})
        elif message.type == WSMsgType.TEXT:
            _control(message.data, playout, outbox)


def _control(text: str, playout: PcmPlayout, outbox: Outbox) -> None:
    """Applies one JSON control message; anything else is answered with an error."""
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind == "clear":
        playout.clear()
    elif kind == "end":
        playout.end()
    else:
        outbox.put_json({"type": "error", "error": 'expected {"type": "clear"} or {"type": "end"}'})


async def ws_events(request: web.Request) -> web.StreamResponse:
    """Sends a channel's per-frame events until the client leaves; the idle face's too."""
    state = request.app[ServerState.KEY]
    name = _channel_name(request)
    socket = web.WebSocketResponse(heartbeat=10.0)
    if not socket.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
    await socket.prepare(request)
    channel = state.channel(name)
    outbox = Outbox(EVENTS_BACKLOG)
    channel.add_sink(outbox.put, owner=socket)
    state.listeners.add(socket)
    state.refresh(channel)
    tasks = TaskOwner(f"Events({name})")
    try:
        sending = tasks.start("send", outbox.send_all(socket))
        reading = tasks.start("read", _drain(socket))
        await asyncio.wait([sending, reading], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await tasks.cancel_all()
        channel.remove_owner(socket)
        state.listeners.discard(socket)
        state.refresh(channel)
        if not socket.closed:
            with contextlib.suppress(Exception):
                await socket.close()
    return socket


async def _drain(socket: web.WebSocketResponse) -> None:
    """Reads (and ignores) what a listener sends, so that its close is seen."""
    async for _message in socket:
        pass
