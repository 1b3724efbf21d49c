"""The session's outgoing media: the avatar video and the re-timed voice.

Both tracks are fed by the session when a frame is released, never paced by sleeps: the media clock
is
the input audio, so a frame leaves when its audio (plus look-ahead) has arrived and it has been
rendered.
Consumers reach them through an aiortc ``MediaRelay`` so that the speaker and any number of viewers
share one source.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK_HZ = 90_000  # RTP video clock
VOICE_RATE_HZ = 48_000
VOICE_LAYOUT = (
    "stereo"  # what aiortc's Opus decoder produces, so received frames pass through as is
)
VOICE_QUEUE_FRAMES = 100  # 2 s of 20 ms frames: only reached if the sender stalls; then oldest go


class AvatarVideoTrack(MediaStreamTrack):
    """Hands out the newest released avatar frame; a frame not taken before the next one is
    dropped."""

    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self._fps = fps
        self._latest: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self.superseded = 0  # frames replaced before any consumer took them

    def publish(self, frame: av.VideoFrame, frame_index: int) -> None:
        """Offers frame ``frame_index`` (made by ``to_video_frame``); call on the event loop."""
        frame.pts = frame_index * VIDEO_CLOCK_HZ // self._fps
        frame.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        if self._fresh.is_set():
            self.superseded += 1
        self._latest = frame
        self._fresh.set()

    async def recv(self) -> av.VideoFrame:
        """Waits for a frame newer than the last one returned."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._fresh.wait()
        self._fresh.clear()
        if self.readyState != "live" or self._latest is None:
            raise MediaStreamError
        return self._latest

    def stop(self) -> None:
        """Ends the track and wakes a waiting consumer so it sees the end."""
        super().stop()
        self._fresh.set()


class VoiceTrack(MediaStreamTrack):
    """The input voice, released frame by frame with the video it belongs to, with continuous
    pts."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.AudioFrame | None] = asyncio.Queue(VOICE_QUEUE_FRAMES)
        self._next_pts = 0

    def publish(self, frame: av.AudioFrame) -> None:
        """Queues a 48 kHz s16 stereo frame; call on the event loop."""
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, VOICE_RATE_HZ)
        self._next_pts += frame.samples
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> av.AudioFrame:
        """Waits for the next released voice frame."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """Ends the track and wakes a waiting consumer so it sees the end."""
        super().stop()
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


def silent_voice_frame(samples: int) -> av.AudioFrame:
    """A frame of ``samples`` zero samples in the voice format."""
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, samples * 2), dtype=np.int16), format="s16", layout=VOICE_LAYOUT
    )
    frame.sample_rate = VOICE_RATE_HZ
    return frame
