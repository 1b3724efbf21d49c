"""A Pipecat video service backed by a running lipstream server (a thin client, like Simli's).

Put it after the TTS in a Pipecat pipeline. TTS audio goes to the server over ``/ws/ingest``; the
avatar comes back over WHEP as ``OutputImageRawFrame`` and the re-timed voice as
``TTSAudioRawFrame`` (48 kHz mono), so lips and voice leave together. An ``InterruptionFrame``
clears what the server has queued; ``TTSStoppedFrame`` ends the segment.

Needs only ``pipecat-ai``, ``aiohttp`` and ``aiortc`` (which brings PyAV); nothing of lipstream is
imported, so it installs in an agent's own environment::

    from lipstream_pipecat import LipstreamVideoService
    avatar = LipstreamVideoService("http://localhost:8080", channel="agent", token=None)
    pipeline = Pipeline([transport.input(), stt, llm, tts, avatar, transport.output()])
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

INGEST_RATE_HZ = 16_000  # what the service sends; the server accepts 8-48 kHz
VOICE_RATE_HZ = 48_000  # what comes back over WebRTC (Opus)


class LipstreamVideoService(FrameProcessor):
    """TTS audio in; avatar frames and the re-timed voice out, from a lipstream server.

    Args:
        base_url: the server, e.g. ``http://localhost:8080``.
        channel: the channel to speak on (a viewer page may watch it too).
        token: the publisher token, if the server has one.
        avatar: an avatar id from ``POST /api/avatars`` (the server's default otherwise).
    """

    def __init__(
        self,
        base_url: str,
        channel: str = "pipecat",
        token: str | None = None,
        avatar: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._base = base_url.rstrip("/")
        self._channel = channel
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._avatar = avatar
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pc: RTCPeerConnection | None = None
        self._whep: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._to_ingest = av.AudioResampler(format="s16", layout="mono", rate=INGEST_RATE_HZ)
        self._to_pipeline = av.AudioResampler(format="s16", layout="mono", rate=VOICE_RATE_HZ)
        self.playback: list[dict[str, Any]] = []  # the server's playback messages, in order

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Sends TTS audio to the server; clears on interruption; passes other frames on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self._connect()
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._send_audio(frame)
            return  # the re-timed voice comes back from the server
        elif isinstance(frame, TTSStoppedFrame):
            await self._send_json({"type": "end"})
        elif isinstance(frame, InterruptionFrame):
            await self._send_json({"type": "clear"})
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._disconnect()
        await self.push_frame(frame, direction)

    async def _connect(self) -> None:
        self._http = aiohttp.ClientSession(headers=self._headers)
        query = f"channel={self._channel}&rate={INGEST_RATE_HZ}"
        if self._avatar:
            query += f"&avatar={self._avatar}"
        ws_url = self._base.replace("http", "ws", 1) + f"/ws/ingest?{query}"
        self._ws = await self._http.ws_connect(ws_url, max_msg_size=0)
        self._tasks.append(self.create_task(self._read_messages(self._ws)))
        await self._view()

    async def _view(self) -> None:
        """A WHEP viewer of the channel: the avatar and its voice come back here."""
        pc = RTCPeerConnection()
        self._pc = pc
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video(track) if track.kind == "video" else self._read_voice(track)
            self._tasks.append(self.create_task(reader))

        await pc.setLocalDescription(await pc.createOffer())
        assert self._http is not None
        async with self._http.post(
            f"{self._base}/whep/{self._channel}",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        ) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP: HTTP {response.status}: {answer.strip()}")
            self._whep = response.headers.get("Location")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _read_messages(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if data.get("type") in ("playback_started", "playback_finished", "error"):
                    self.playback.append(data)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            image = frame.to_ndarray(format="rgb24")
            out = OutputImageRawFrame(
                image=image.tobytes(), size=(frame.width, frame.height), format="RGB"
            )
            await self.push_frame(out)

    async def _read_voice(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            frame.pts = None
            for mono in self._to_pipeline.resample(frame):
                pcm = mono.to_ndarray().reshape(-1)
                if pcm.any():  # silence between sentences is not pushed (as Simli's service)
                    await self.push_frame(
                        TTSAudioRawFrame(
                            audio=pcm.tobytes(), sample_rate=VOICE_RATE_HZ, num_channels=1
                        )
                    )

    async def _send_audio(self, frame: TTSAudioRawFrame) -> None:
        if self._ws is None or self._ws.closed:
            return
        samples = np.frombuffer(frame.audio, dtype=np.int16).reshape(1, -1)
        layout = "mono" if frame.num_channels == 1 else "stereo"  # packed s16: one row either way
        audio = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
        audio.sample_rate = frame.sample_rate
        pcm = b"".join(f.to_ndarray().tobytes() for f in self._to_ingest.resample(audio))
        if pcm:
            await self._ws.send_bytes(pcm)

    async def _send_json(self, message: dict[str, Any]) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(message))

    async def _disconnect(self) -> None:
        """Idempotent: closes the socket (ending the session), the viewer and the readers."""
        for task in self._tasks:
            await self.cancel_task(task)
        self._tasks = []
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._pc is not None:
            if self._whep and self._http is not None:
                async with self._http.delete(self._base + self._whep):
                    pass
            await self._pc.close()
            self._pc = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def cleanup(self) -> None:
        """Pipecat's teardown: disconnects if an End or Cancel frame did not."""
        await super().cleanup()
        await self._disconnect()
