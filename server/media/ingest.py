"""Incoming voice: format conversion for the pipeline, and the reader loops that feed a session.

A WebRTC publisher and a WebSocket PCM publisher both end in ``AvatarSession.feed``. The reader
loops also keep the media clock running when the input stalls (silence is fed, so the avatar idles
instead of freezing) and notice when a publisher has vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from lipstream.realtime.clock import SAMPLE_RATE_HZ

from ..tasks import TaskOwner
from .low_latency import tag_with_opus_packet
from .tracks import OPUS_FRAME_SAMPLES, VOICE_LAYOUT, VOICE_RATE_HZ, silent_voice_frame

logger = logging.getLogger(__name__)

STARVED_AFTER_S = 0.1  # no packet for 5 Opus frames: assume the sender paused and feed silence
SILENCE_STEP_S = 0.02  # silence is fed in 20 ms frames, like real packets
FLUSHED_AFTER_S = 0.01
"""Silence the resamplers must have taken in before more of it skips them: libswresample's default
filter (32 taps) reaches 2 ms, so after 10 ms nothing of the sound before is left in it."""
VANISHED_AFTER_S = 6.0  # a WebRTC publisher silent this long is gone (browsers send silence)
MAX_BACKLOG_S = 0.5  # input waiting longer than this is dropped: an overloaded session stays live


@dataclass(frozen=True)
class Arrived:
    """An input frame and when it reached the server."""

    frame: av.AudioFrame
    arrived_s: float  # time.monotonic()


@dataclass(frozen=True)
class ConvertedAudio:
    """One input frame in the two forms the session needs."""

    pipeline: np.ndarray  # (n,) float32 at 16 kHz mono, for the drivers
    voice: list[av.AudioFrame]  # 48 kHz s16 stereo, to be re-sent with the video


class AudioFrontEnd:
    """Resamples incoming frames of any rate and layout; owned by one session's worker thread.

    libswresample's filter needs a few input samples past each output sample, so it holds back the
    last ones of every frame until the next arrives: 16 of the 320 a 20 ms packet makes at 16 kHz.
    The media clock counts pipeline samples, so a frame whose audio had all arrived waited a whole
    packet for its last millisecond. The front end therefore puts as much silence as the first
    frame held back before its samples: from then on the pipeline has exactly as many samples as
    the input covered, and its sound runs 1 ms behind, which nobody sees.

    Digital silence that follows ``FLUSHED_AFTER_S`` of digital silence of the same format skips
    the resamplers: their filters then hold only zeros, so they would give zeros, as many as the
    input covers, and their state would not change. An idle channel is fed nothing else: with
    the silence packets of ``tracks.VoiceTrack`` and 40 ms idle feeds, its resample stage went
    from 0.63-0.65 to 0.27-0.28 ms a rendered frame (``python -m bench.idle_cost``, two pairs
    interleaved with 6162f33, the commit before the three).
    """

    def __init__(self) -> None:
        self._to_pipeline = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        self._to_voice = av.AudioResampler(format="s16", layout=VOICE_LAYOUT, rate=VOICE_RATE_HZ)
        self._lead_in_done = False
        self._silent_kind: tuple[str, str, int] | None = None  # the last frame's, if silent
        self._silence_fed_s = 0.0  # the resamplers' latest run of silence of that kind

    def convert(self, frame: av.AudioFrame) -> ConvertedAudio:
        """Converts one frame. PyAV's resampler (libswresample) is used, not hand-written code."""
        frame.pts = None  # the session keeps time by sample count; decoder pts may jump after loss
        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        silent = is_digital_silence(frame)
        if silent and kind == self._silent_kind and self._silence_fed_s >= FLUSHED_AFTER_S:
            quiet = _silence_like(frame)
            if quiet is not None:
                return quiet
        if silent and kind == self._silent_kind:
            self._silence_fed_s += frame.samples / frame.sample_rate
        else:
            self._silent_kind = kind if silent else None
            self._silence_fed_s = frame.samples / frame.sample_rate if silent else 0.0
        pipeline = [f.to_ndarray().reshape(-1) for f in self._to_pipeline.resample(frame)]
        samples = np.concatenate(pipeline) if pipeline else np.zeros(0, dtype=np.float32)
        if not self._lead_in_done:
            samples = self._lead_in(frame, samples)
        if _is_voice_format(frame):
            voice = [frame]
        else:
            voice = list(self._to_voice.resample(frame))
        return ConvertedAudio(pipeline=samples.astype(np.float32, copy=False), voice=voice)

    def _lead_in(self, first: av.AudioFrame, samples: np.ndarray) -> np.ndarray:
        """The first frame's samples after the silence that the resampler held back of it."""
        self._lead_in_done = True
        covered = round(first.samples * SAMPLE_RATE_HZ / first.sample_rate)
        held_back = max(0, covered - len(samples))
        return np.concatenate([np.zeros(held_back, np.float32), samples])


def is_digital_silence(frame: av.AudioFrame) -> bool:
    """True when every sample of ``frame`` is zero (a muted microphone, fed silence)."""
    return not frame.to_ndarray().any()


def _silence_like(frame: av.AudioFrame) -> ConvertedAudio | None:
    """What the resamplers make of a silent ``frame`` when they hold only zeros.

    None where a 20 ms-style frame does not cover a whole number of samples at both output rates
    (the resamplers then carry a fraction, which they keep to themselves). A frame in the voice
    format is the voice itself, with the client's packet it may carry (``VoiceTrack`` sends that
    back as it came); other silence comes as 20 ms voice frames where it divides into them, so
    that ``VoiceTrack`` can send each as the Opus silence packet.
    """
    pipeline, left = divmod(frame.samples * SAMPLE_RATE_HZ, frame.sample_rate)
    voice, voice_left = divmod(frame.samples * VOICE_RATE_HZ, frame.sample_rate)
    if left or voice_left:
        return None
    if _is_voice_format(frame):
        return ConvertedAudio(pipeline=np.zeros(pipeline, np.float32), voice=[frame])  # its tag too
    pieces, rest = divmod(voice, OPUS_FRAME_SAMPLES)  # Opus's 20 ms, which VoiceTrack sends as one
    voiced = [silent_voice_frame(OPUS_FRAME_SAMPLES) for _ in range(pieces)]
    if rest or not voiced:
        voiced = [silent_voice_frame(voice)]
    return ConvertedAudio(pipeline=np.zeros(pipeline, np.float32), voice=voiced)


def _is_voice_format(frame: av.AudioFrame) -> bool:
    return (
        frame.format.name == "s16"
        and frame.layout.name == VOICE_LAYOUT
        and frame.sample_rate == VOICE_RATE_HZ
    )


def silence(duration_s: float) -> av.AudioFrame:
    """Silence in the voice format, for keeping the clock going while no input arrives."""
    return silent_voice_frame(int(round(duration_s * VOICE_RATE_HZ)))


def pcm_frame(pcm: bytes, sample_rate_hz: int) -> av.AudioFrame:
    """Wraps little-endian s16 mono PCM (the WebSocket ingest format) as a frame."""
    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = sample_rate_hz
    return frame


class SilenceFiller:
    """Tracks the media time the input has covered and tops it up with silence when it stalls."""

    def __init__(self) -> None:
        self._covered_until = time.monotonic()

    def heard(self) -> None:
        """Real audio arrived: media time has caught up with the wall clock."""
        self._covered_until = time.monotonic()

    def due(self) -> float:
        """Seconds of silence to feed now (a multiple of ``SILENCE_STEP_S``; 0 if none)."""
        gap = time.monotonic() - self._covered_until
        steps = int(gap / SILENCE_STEP_S + 1e-9)  # 0.06 / 0.02 is 2.9999...: still three steps
        self._covered_until += steps * SILENCE_STEP_S
        return steps * SILENCE_STEP_S


class Feed(Protocol):
    """What the reader loops feed: ``AvatarSession``, or a fake in tests.

    Ingest never imports the session (the session imports ingest's front end): no cycle.
    """

    tasks: TaskOwner
    closed: asyncio.Event

    async def feed(self, frame: av.AudioFrame) -> None:
        """Runs one input frame through the pipeline."""
        ...

    async def feed_batch(self, batch: list[Arrived]) -> None:
        """Runs several input frames through the pipeline in one trip."""
        ...

    def completes_frame(self, batch: list[Arrived]) -> bool:
        """Whether feeding ``batch`` would complete a video frame."""
        ...


async def pump_track(session: Feed, track: MediaStreamTrack) -> str:
    """Feeds a WebRTC audio track into ``session`` until it ends; returns why it ended.

    A reader drains the track from the moment it starts (aiortc's track queue is unbounded), and the
    feeder hands everything that arrived since its last trip to the worker in one batch. So a
    session that falls behind catches up in a few large steps instead of letting packets queue,
    and if it is more than ``MAX_BACKLOG_S`` behind, the oldest audio is dropped: the delay stays
    bounded. A reader that fails ends the feed with its error as the reason (and is logged).

    A batch that completes no video frame (the first 20 ms packet of a 40 ms frame) waits on the
    loop for the next one: its frame could not be made sooner, and a trip to the worker costs
    about as much CPU as the packet's own work. It goes alone if the client stalls or leaves.
    Four talking sessions and the independent probe, the workers' thread CPU per rendered frame
    (``lipstream_thread_cpu_seconds_total`` over 10 s of the probe, read by a harness not kept;
    ``bench.probe_cpu`` prints the same counters as cores), five interleaved pairs: 12.6, 11.4,
    10.5, 11.1, 12.5 ms against 11.9, 11.7, 11.1, 12.0, 14.4 with a trip per packet.
    """
    inbox = AudioInbox()
    reader = session.tasks.start("read-track", _read_track(track, inbox))
    try:
        return await _feed_from(session, inbox)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class AudioInbox:
    """Frames read from a track and not yet fed, with the reader's verdict when it stops."""

    def __init__(self) -> None:
        self.frames: deque[Arrived] = deque()
        self.ready = asyncio.Event()
        self.ended: str | None = None
        self.dropped_s = 0.0

    def put(self, frame: av.AudioFrame) -> None:
        """Stores a frame; drops the oldest past ``MAX_BACKLOG_S`` of audio."""
        self.frames.append(Arrived(frame, time.monotonic()))
        while (
            sum(a.frame.samples / a.frame.sample_rate for a in self.frames) > MAX_BACKLOG_S + 1e-9
        ):
            old = self.frames.popleft()
            self.dropped_s += old.frame.samples / old.frame.sample_rate
        self.ready.set()

    def take(self) -> list[Arrived]:
        """Everything stored, oldest first."""
        batch = list(self.frames)
        self.frames.clear()
        self.ready.clear()
        return batch


async def _read_track(track: MediaStreamTrack, inbox: AudioInbox) -> None:
    try:
        while True:
            frame = await track.recv()
            if not isinstance(frame, av.AudioFrame):
                raise TypeError(f"an audio track gave {type(frame).__name__}")
            tag_with_opus_packet(track, frame)
            inbox.put(frame)
    except MediaStreamError:
        inbox.ended = "the client's audio track ended"
    except Exception as exc:
        logger.exception("Reading the client's audio failed")
        inbox.ended = f"reading the client's audio failed: {exc!r}"
    finally:
        inbox.ready.set()


async def _feed_from(session: Feed, inbox: AudioInbox) -> str:
    filler = SilenceFiller()
    last_heard = time.monotonic()
    held: list[Arrived] = []  # arrived, and completes no frame yet: it goes with the next
    # Checked each turn: before Python 3.12, wait_for may swallow a cancel that arrives as its
    # inner wait completes, and this loop would then feed a closed session until VANISHED_AFTER_S.
    while not session.closed.is_set():
        try:
            await asyncio.wait_for(inbox.ready.wait(), STARVED_AFTER_S)
        except asyncio.TimeoutError:
            if time.monotonic() - last_heard > VANISHED_AFTER_S:
                return f"no audio from the client for {VANISHED_AFTER_S:.0f} s"
            if held:
                await session.feed_batch(held)
                held = []
            gap_s = filler.due()
            if gap_s > 0:
                await session.feed(silence(gap_s))
            continue
        batch = held + inbox.take()
        if len(batch) > len(held):
            last_heard = time.monotonic()
            filler.heard()
        if batch and (inbox.ended is not None or session.completes_frame(batch)):
            await session.feed_batch(batch)
            batch = []
        held = batch
        if inbox.ended is not None:
            return inbox.ended
    return "the session closed"
