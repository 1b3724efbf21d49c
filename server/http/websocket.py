"""WebSocket PCM ingest, for TTS and translation engines that push audio instead of calling.

``GET /ws/ingest?channel=NAME[&avatar=ID][&rate=16000]`` opens a session whose avatar is watched
over WHEP on ``channel``. Binary messages carry little-endian s16 mono PCM at ``rate``. Engines
often push faster than real time, so the PCM is buffered and played out at the wall-clock rate; a
full buffer (``MAX_BUFFERED_S``) stops the server reading the socket (back-pressure) instead of
growing. Gaps play as silence, so the avatar idles between sentences.

A publisher that sends ``{"type": "end"}`` has its buffered audio played before the session ends;
one that disconnects ends its session at once, whatever it had queued (the slot is freed in
milliseconds, or within ``CLOSED_POLL_S`` while the buffer is full). If the playout dies, the
session ends and the socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from ..media.ingest import SILENCE_STEP_S, Feed, pcm_frame
from ..registry import PLACEMENT_HEADER, RETRY_AFTER_S, RegistryError
from ..state import ServerState
from ..tasks import TaskOwner
from .signaling import end_session

logger = logging.getLogger(__name__)

MAX_BUFFERED_S = 30.0  # how far ahead of real time a pushing engine may get before back-pressure
MAX_MESSAGE_BYTES = (
    4 * 1024 * 1024
)  # aiohttp's default, stated: one message is at most 131 s at 16 kHz
ALLOWED_RATES_HZ = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
RESYNC_AFTER_S = 0.2  # if the loop stalled this long, restart the playout schedule, no burst
CLOSED_POLL_S = 0.2  # while the buffer is full and the socket unread: how often to seek a hang-up


class PcmPlayout:
    """Cuts pushed PCM into 20 ms frames and feeds them to a session on the wall clock."""

    def __init__(self, session: Feed, rate_hz: int) -> None:
        self._session = session
        self._rate_hz = rate_hz
        self._frame_bytes = 2 * int(rate_hz * SILENCE_STEP_S)
        self._frames: deque[bytes] = deque()
        self._limit = int(MAX_BUFFERED_S / SILENCE_STEP_S)
        self._partial = b""
        self._played = asyncio.Event()  # set after each 20 ms frame is fed

    def push(self, pcm: bytes) -> None:
        """Adds PCM (never waits: the caller stops reading while ``full``)."""
        data = self._partial + pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._frames.extend(
            data[start : start + self._frame_bytes] for start in range(0, whole, self._frame_bytes)
        )
        self._partial = data[whole:]

    @property
    def full(self) -> bool:
        """Whether ``MAX_BUFFERED_S`` or more is waiting to play."""
        return len(self._frames) >= self._limit

    @property
    def buffered_s(self) -> float:
        """Seconds of PCM waiting to play."""
        return len(self._frames) * SILENCE_STEP_S

    async def room(self) -> None:
        """Returns once the buffer is no longer full."""
        while self.full:
            self._played.clear()
            await self._played.wait()

    async def drained(self) -> None:
        """Returns once everything pushed so far has been played."""
        while self._frames:
            self._played.clear()
            await self._played.wait()

    async def run(self) -> None:
        """Feeds one frame every 20 ms, silence when nothing is buffered; runs until cancelled."""
        silence = bytes(self._frame_bytes)
        due = time.monotonic()
        while True:
            due += SILENCE_STEP_S
            delay = due - time.monotonic()
            if delay < -RESYNC_AFTER_S:
                due = time.monotonic()
            elif delay > 0:
                await asyncio.sleep(delay)
            chunk = self._frames.popleft() if self._frames else silence
            self._played.set()
            await self._session.feed(pcm_frame(chunk, self._rate_hz))


def _rate(request: web.Request) -> int:
    try:
        rate = int(request.query.get("rate", "16000"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="rate must be an integer sample rate in Hz\n") from exc
    if rate not in ALLOWED_RATES_HZ:
        raise web.HTTPBadRequest(text=f"rate must be one of {ALLOWED_RATES_HZ}\n")
    return rate


async def ws_ingest(request: web.Request) -> web.StreamResponse:
    """Runs one WebSocket publisher session until it ends, leaves, or its playout fails."""
    state = request.app[ServerState.KEY]
    rate = _rate(request)
    channel = request.query.get("channel", "")
    avatar_id = request.query.get("avatar") or state.avatars.default_id
    if avatar_id is None or not await state.avatars.find(avatar_id):
        raise web.HTTPNotFound(text=f"unknown avatar {avatar_id!r}\n")
    try:
        state.sessions.reserve(channel, request.headers.get(PLACEMENT_HEADER))
    except RegistryError as exc:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}
        return web.Response(status=exc.status, text=f"{exc}\n", headers=headers)
    socket = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_MESSAGE_BYTES)
    try:
        if not socket.can_prepare(request).ok:  # a plain GET: refuse before a session exists
            raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
        session = state.new_session(state.new_id(), channel, avatar_id)
    except BaseException:
        state.sessions.release(channel)
        raise
    state.sessions.add(session)
    state.metrics.sessions.set(len(state.sessions.by_id))
    state.publishers.add(socket)
    reason = "the WebSocket publisher left"
    try:
        await socket.prepare(request)
        await socket.send_json({"type": "session", "id": session.id, "channel": channel})
        playout = PcmPlayout(session, rate)
        playing = session.tasks.start("playout", playout.run())
        receiving = session.tasks.start("receive", _receive(request, socket, playout))
        await asyncio.wait([playing, receiving], return_when=asyncio.FIRST_COMPLETED)
        if playing.done():
            reason = "the playout stopped"  # its exception, if any, was logged by the task owner
        elif receiving.exception() is None and receiving.result():  # {"type": "end"}: play it out
            reason = "the WebSocket publisher ended"
            draining = session.tasks.start("drain", playout.drained())
            await asyncio.wait([playing, draining], return_when=asyncio.FIRST_COMPLETED)
    finally:
        state.publishers.discard(socket)
        await end_session(state, session, reason)
        if not socket.closed:
            with contextlib.suppress(Exception):
                await socket.close(code=WSCloseCode.GOING_AWAY)
    return socket


async def close_publishers(app: web.Application) -> None:
    """On shutdown: closes every publisher socket, so each handler ends its session at once."""
    state = app[ServerState.KEY]
    for socket in list(state.publishers):
        with contextlib.suppress(Exception):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def _receive(
    request: web.Request, socket: web.WebSocketResponse, playout: PcmPlayout
) -> bool:
    """Reads PCM into ``playout`` until the publisher leaves (False) or sends end (True).

    While the buffer is full the socket is not read (back-pressure), but a close that arrives
    meanwhile is still noticed: one read is kept pending, and if it brings more PCM, the
    connection itself is watched until there is room.
    """
    while True:
        message = await socket.receive()
        while True:
            if message.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                return False
            if message.type == WSMsgType.TEXT and _is_end(message.data):
                return True
            if message.type != WSMsgType.BINARY:
                break
            if len(message.data) % 2:
                await socket.send_json({"type": "error", "error": "PCM must be whole s16 samples"})
                break
            playout.push(message.data)
            if not playout.full:
                break
            arrived = await _wait_for_room(request, socket, playout)
            if arrived is None:
                break
            message = arrived


async def _wait_for_room(
    request: web.Request, socket: web.WebSocketResponse, playout: PcmPlayout
) -> WSMessage | None:
    """Waits while ``playout`` is full; returns a message read meanwhile (None if none)."""
    waiters = TaskOwner("WsIngest")
    reading = waiters.start("read", socket.receive())
    room = waiters.start("room", playout.room())
    try:
        await asyncio.wait([reading, room], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await waiters.cancel_all()
    if reading.cancelled():
        return None
    message = reading.result()
    while playout.full and message.type == WSMsgType.BINARY:
        transport = request.transport
        if transport is None or transport.is_closing():
            return WSMessage(WSMsgType.CLOSED, None, None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(playout.room(), CLOSED_POLL_S)
    return message


def _is_end(text: str) -> bool:
    """Whether a text message is ``{"type": "end"}``: play what is buffered, then stop."""
    try:
        return bool(json.loads(text).get("type") == "end")
    except (ValueError, AttributeError):
        return False
