"""WebSocket PCM ingest, for TTS and translation engines that push audio rather than call over
WebRTC.

``GET /ws/ingest?channel=NAME[&avatar=ID][&rate=16000]`` opens a session whose avatar is watched
over
WHEP on ``channel``. Binary messages carry little-endian s16 mono PCM at ``rate``. Engines often
push
faster than real time, so the PCM is buffered and played out at the wall-clock rate; a full buffer
stops
the server reading the socket (back-pressure) instead of growing. Gaps play as silence, so the
avatar
idles between sentences.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import WSMsgType, web

from .ingest import SILENCE_STEP_S, pcm_frame
from .registry import RETRY_AFTER_S, RegistryError
from .session import AvatarSession
from .signaling import end_session
from .state import ServerState

logger = logging.getLogger(__name__)

MAX_BUFFERED_S = 30.0  # how far ahead of real time a pushing engine may get before back-pressure
ALLOWED_RATES_HZ = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
RESYNC_AFTER_S = (
    0.2  # if the loop stalled this long, restart the playout schedule instead of bursting
)


class PcmPlayout:
    """Cuts pushed PCM into 20 ms frames and feeds them to a session on the wall clock."""

    def __init__(self, session: AvatarSession, rate_hz: int) -> None:
        self._session = session
        self._rate_hz = rate_hz
        self._frame_bytes = 2 * int(rate_hz * SILENCE_STEP_S)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(int(MAX_BUFFERED_S / SILENCE_STEP_S))
        self._partial = b""
        self._played = asyncio.Event()  # set after each 20 ms frame is fed

    async def push(self, pcm: bytes) -> None:
        """Adds PCM; waits while the buffer is full."""
        data = self._partial + pcm
        whole = len(data) - len(data) % self._frame_bytes
        for start in range(0, whole, self._frame_bytes):
            await self._queue.put(data[start : start + self._frame_bytes])
        self._partial = data[whole:]

    async def drained(self) -> None:
        """Returns once everything pushed so far has been played."""
        while not self._queue.empty():
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
            chunk = silence if self._queue.empty() else self._queue.get_nowait()
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
    """Runs one WebSocket publisher session until the socket closes and its audio has played."""
    state = request.app[ServerState.KEY]
    rate = _rate(request)
    channel = request.query.get("channel", "")
    avatar_id = request.query.get("avatar") or state.avatars.default_id
    if not await state.avatars.find(avatar_id):
        raise web.HTTPNotFound(text=f"unknown avatar {avatar_id!r}\n")
    try:
        state.sessions.reserve(channel)
    except RegistryError as exc:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}
        return web.Response(status=exc.status, text=f"{exc}\n", headers=headers)
    socket = web.WebSocketResponse(heartbeat=10.0)
    try:
        if not socket.can_prepare(request).ok:  # a plain GET: refuse before a session exists
            raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
        session = state.new_session(state.new_id(), channel, avatar_id)
    except BaseException:
        state.sessions.release(channel)
        raise
    state.sessions.add(session)
    state.metrics.sessions.set(len(state.sessions.by_id))
    await socket.prepare(request)
    await socket.send_json({"type": "session", "id": session.id, "channel": channel})
    playout = PcmPlayout(session, rate)
    session.tasks.start("playout", playout.run())
    try:
        await _receive(socket, playout)
        closed = asyncio.ensure_future(session.closed.wait())
        drained = asyncio.ensure_future(playout.drained())
        await asyncio.wait([closed, drained], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (closed, drained):
            waiter.cancel()
    finally:
        await end_session(state, session, "the WebSocket publisher left")
    return socket


async def _receive(socket: web.WebSocketResponse, playout: PcmPlayout) -> None:
    async for message in socket:
        if message.type == WSMsgType.BINARY:
            if len(message.data) % 2:
                await socket.send_json({"type": "error", "error": "PCM must be whole s16 samples"})
                continue
            await playout.push(message.data)
        elif message.type == WSMsgType.TEXT and _is_end(message.data):
            return


def _is_end(text: str) -> bool:
    """Whether a text message is the publisher's ``{"type": "end"}``: play what is buffered, then
    stop."""
    try:
        return json.loads(text).get("type") == "end"
    except (ValueError, AttributeError):
        return False
