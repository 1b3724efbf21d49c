"""The session's outgoing media: the avatar video and the re-timed voice.

Both tracks are fed by the session when a frame is released, never paced by sleeps: the media clock
is the input audio, so a frame leaves when its audio (plus look-ahead) has arrived and it has been
rendered. Consumers reach the video through ``video_out.VideoOut`` (VP8 packets coded once, or
this module's frames for another codec) and the voice through ``VoiceTrack.subscribe``, whose
per-consumer queue is bounded like the source's (aiortc's buffered relay queue is not), so a
stalled viewer costs at most 2 s of audio.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .low_latency import opus_packet_of

VIDEO_CLOCK_HZ = 90_000  # RTP video clock
VOICE_RATE_HZ = 48_000
VOICE_LAYOUT = "stereo"  # what aiortc's Opus decoder produces, so received frames pass as they are
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz
OPUS_SILENCE = bytes.fromhex("f8fffe")
"""A 20 ms Opus packet of digital silence (one CELT frame flagged silent), exactly what
``aiortc_tuning.VoiceEncoder`` codes each 20 ms of it as after its first ``CODED_SILENT_FRAMES``
(tests/test_aiortc_tuning.py checks both)."""
CODED_SILENT_FRAMES = 2
VOICE_QUEUE_FRAMES = 100  # 2 s of 20 ms frames: only reached if the sender stalls; then oldest go


class AvatarVideoTrack(MediaStreamTrack):
    """Hands out the newest released avatar frame; one not taken before the next is dropped."""

    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self._fps = fps
        self._latest: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self.superseded = 0  # frames replaced before any consumer took them

    def publish(self, frame: av.VideoFrame, frame_index: int) -> None:
        """Offers frame ``frame_index`` (made by ``FrameComposer``); call on the event loop."""
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
    """The input voice, released frame by frame with the video it belongs to, with continuous pts.

    Each consumer should take its own ``subscribe()`` track: every queue holds at most
    ``VOICE_QUEUE_FRAMES`` and drops its oldest frame when a consumer falls that far behind.

    A frame decoded from a client's Opus packet (``low_latency.tag_with_opus_packet``) goes out as
    that packet (aiortc's sender packs an ``av.Packet`` as it is): the listener hears the voice as
    the client coded it, and the server saves an Opus encode (0.45 ms a video frame,
    ``bench/stage_cost.py``) and its thread hop. Silence, hushed voice and PCM from the WebSocket
    ingest are frames, which the sender encodes (``aiortc_tuning.VoiceEncoder``, on the same
    timestamps).

    Digital silence goes out as ``OPUS_SILENCE`` from its ``CODED_SILENT_FRAMES + 1``-th 20 ms
    frame on: the very packet libopus codes it as from then on, with no encode and no trip to
    aiortc's encoder thread. An idle channel sends nothing else: its encoder threads (VP8 and
    Opus) went from 2.0-2.05 to 1.23-1.28 ms of CPU a rendered frame (``python -m
    bench.idle_cost``, two pairs interleaved with 6162f33, with the front end's silence skip and
    40 ms idle feeds). The first frames of a silence are still coded, so the
    voice before it fades as libopus means it to.
    """

    kind = "audio"

    def __init__(self, source: VoiceTrack | None = None) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.AudioFrame | av.Packet | None] = asyncio.Queue(
            VOICE_QUEUE_FRAMES
        )
        self._next_pts = 0
        self._source = source
        self._subscribers: set[VoiceTrack] = set()
        self._silent_frames = 0  # the latest run of digitally silent 20 ms frames published
        self.overflowed = 0  # frames dropped because this track's consumer fell behind

    def subscribe(self) -> VoiceTrack:
        """A track that receives every frame published from now on, with its own bounded queue."""
        track = VoiceTrack(source=self)
        self._subscribers.add(track)
        return track

    def publish(self, frame: av.AudioFrame) -> None:
        """Queues a 48 kHz s16 stereo frame here and in every subscriber; call on the event loop.

        A frame tagged with its Opus packet is queued as that packet.
        """
        packet = opus_packet_of(frame)
        item: av.AudioFrame | av.Packet = frame if packet is None else av.Packet(packet.payload)
        if packet is None and self._still_silent(frame):
            item = av.Packet(OPUS_SILENCE)
        item.pts = self._next_pts
        item.time_base = Fraction(1, VOICE_RATE_HZ)
        self._next_pts += frame.samples
        self._put(item)
        for track in self._subscribers:
            track._put(item)

    def _still_silent(self, frame: av.AudioFrame) -> bool:
        """Whether ``frame`` is a 20 ms silence that libopus would code as ``OPUS_SILENCE``."""
        if frame.samples != OPUS_FRAME_SAMPLES or frame.to_ndarray().any():
            self._silent_frames = 0
            return False
        self._silent_frames += 1
        return self._silent_frames > CODED_SILENT_FRAMES

    def _put(self, frame: av.AudioFrame | av.Packet) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.overflowed += 1
        self._queue.put_nowait(frame)

    async def recv(self) -> av.AudioFrame | av.Packet:  # type: ignore[override]
        """Waits for the next released voice frame or Opus packet."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """Ends the track (and its subscribers) and wakes a waiting consumer so it sees the end."""
        super().stop()
        if self._source is not None:
            self._source._subscribers.discard(self)
        for track in list(self._subscribers):
            track.stop()
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
