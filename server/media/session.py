"""One avatar session: the media clock between the incoming voice and the outgoing face and voice.

Audio frames go to the session's worker thread in one trip per arrival (or per pile of arrivals
when the session fell behind). There they are resampled and run through the motion pipeline, and
the newest frame pose the trip completed is rendered; older ones are dropped, never queued. Back
on the event loop the video frame is released together with the voice it covers, so voice and lips
leave the server together and the held voice delay stays bounded for the whole session.

The session does not own its outputs: it publishes into a ``Channel`` (``channel.py``), which its
viewers watch across speakers. ``clear()`` interrupts it: the voice not yet sent falls silent and
the mouth eases to rest over two frames, until ``resume()`` says real audio follows.

All CPU work runs on the session's own single-thread worker: stages stay ordered without locks,
and one slow session cannot stall the event loop or the other sessions. Motion and rendering share
that one trip because every hand-off between threads waits for a core when sessions share few of
them (README, "Profile").
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer
from lipstream.realtime.visemes import FrameEvents

from ..metrics import Metrics
from ..tasks import TaskOwner
from .channel import Channel
from .frames import FrameComposer
from .hush import Hush
from .ingest import Arrived, AudioFrontEnd
from .tracks import VOICE_RATE_HZ, silent_voice_frame

logger = logging.getLogger(__name__)

RECENT_DELAYS = 250  # voice frames (5 s) behind the delay figure shown on the talk page
TIMELINE_FRAMES = 25 * 60 * 6  # per-frame timestamps kept for the bench: the last 6 min at 25 fps


@dataclass(frozen=True)
class HeldVoice:
    """A voice frame waiting for the video frame that covers its last sample."""

    end_sample: int  # pipeline sample index just past this frame's audio
    frame: av.AudioFrame
    arrived_s: float  # time.monotonic() when it reached the server


@dataclass(frozen=True)
class Rendered:
    """The newest frame a worker trip completed, rendered."""

    pose: FramePose
    frame: av.VideoFrame
    ready_at: float  # arrival of the input frame that completed its audio
    posed_at: float  # its pose was ready (resample, VAD, encoder, motion)


@dataclass(frozen=True)
class Processed:
    """What the worker thread returns for a batch of input frames."""

    held: list[HeldVoice]
    rendered: Rendered | None  # None if the batch completed no frame
    skipped: list[FramePose]  # frames the batch completed but did not render (only the newest is)
    events: list[dict[str, object]]  # FrameEvents.describe of every completed frame, in order


@dataclass(frozen=True)
class FrameTimes:
    """When one rendered video frame passed each server stage (``time.monotonic()`` seconds).

    CLOCK_MONOTONIC is shared by every process on a host, so a client on the same machine can put
    these beside its own send and receive times (bench/latency.py splits the latency this way).
    """

    index: int
    ready_at: float  # the input frame that completed this frame's audio (+ look-ahead) arrived
    posed_at: float  # the mouth pose was ready (resample, VAD, encoder, motion)
    rendered_at: float  # the rendered frame was handed to the outgoing track (encode, send next)


class AvatarSession:
    """Pipeline and renderer for one speaker (or a channel's idle face), publishing on a channel.

    Call every method on the event loop. ``close()`` is idempotent and frees everything the session
    owns; the channel and its viewers stay.
    """

    def __init__(
        self,
        session_id: str,
        channel: Channel,
        clock: MediaClock,
        pipeline: MotionPipeline,
        renderer: Renderer,
        metrics: Metrics,
        events: FrameEvents,
        avatar_id: str = "",
    ) -> None:
        self.id = session_id
        self.output = channel
        self.channel = channel.name
        self.avatar_id = avatar_id
        self.clock = clock
        self.tasks = TaskOwner(f"Session({session_id})")
        self.closed = asyncio.Event()
        self._pipeline = pipeline
        self._composer = FrameComposer(renderer)
        self._metrics = metrics
        self._events = events
        self._front_end = AudioFrontEnd()
        self._hush = Hush()
        # One single-thread worker: motion state stays ordered without locks.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"session-{session_id}")
        self._peers: set[RTCPeerConnection] = set()
        self._tracks_of: dict[RTCPeerConnection, list[MediaStreamTrack]] = {}
        self._held: deque[HeldVoice] = deque()
        self.timeline: deque[FrameTimes] = deque(maxlen=TIMELINE_FRAMES)
        self._recent_delays_s: deque[float] = deque(maxlen=RECENT_DELAYS)
        self.frames_rendered = 0
        self.frames_dropped = 0

    # --- consumers -------------------------------------------------------------------------------

    def own(self, pc: RTCPeerConnection) -> None:
        """Makes ``pc`` close with the session."""
        self._peers.add(pc)

    def attach(self, pc: RTCPeerConnection, video: bool = True, voice: bool = True) -> None:
        """Adds the channel's tracks to ``pc`` (a publisher's return path).

        ``pc`` then closes with the session.
        """
        self.own(pc)
        self._tracks_of.setdefault(pc, []).extend(self.output.subscribe(pc, video, voice))

    async def detach(self, pc: RTCPeerConnection) -> None:
        """Closes one consumer's connection and its subscriptions; the others carry on."""
        self._peers.discard(pc)
        self.output.remove_owner(pc)
        for track in self._tracks_of.pop(pc, []):
            track.stop()  # aiortc's sender does not stop its track; the relay would keep it
        await _close_quietly(pc, f"Session({self.id})")

    # --- input -----------------------------------------------------------------------------------

    def clear(self) -> float:
        """Interrupts: the voice not yet sent falls silent and the mouth rests within two frames.

        The media clock runs on: held voice is replaced by silence of the same length. Returns the
        seconds of voice that were fed but had not left, so the caller can say what was played.
        """
        self._hush.requested += 1
        held_s = sum(h.frame.samples / h.frame.sample_rate for h in self._held)
        self._held = deque(_silenced(held) for held in self._held)
        return held_s

    def resume(self) -> None:
        """Real audio follows a ``clear``: frames from the next input on move the mouth again."""
        self._hush.resume_requested = True

    async def feed(self, frame: av.AudioFrame) -> None:
        """Runs one input audio frame through the pipeline and releases whatever it completes."""
        await self.feed_batch([Arrived(frame, time.monotonic())])

    def completes_frame(self, batch: list[Arrived]) -> bool:
        """Whether ``batch`` would complete a video frame (read on the loop, between trips).

        Counts the batch's samples at the pipeline's rate rounded up: a frame wrongly expected
        costs one trip, a frame wrongly not expected would wait a packet.
        """
        rate = self.clock.sample_rate_hz
        samples = sum(-(-a.frame.samples * rate // a.frame.sample_rate) for a in batch)
        return self._pipeline.completes_frame(samples)

    async def feed_batch(self, batch: list[Arrived]) -> None:
        """Like ``feed`` for several frames in one trip to the worker (used when input piles up)."""
        if self.closed.is_set():
            return
        loop = asyncio.get_running_loop()
        clears = self._hush.requested
        done = await loop.run_in_executor(self._worker, self._process, batch)
        if self.closed.is_set():
            return  # closed during the trip: its tracks are stopped
        cleared = clears != self._hush.requested  # voice from before a clear made during the trip
        self._held.extend([_silenced(h) for h in done.held] if cleared else done.held)
        if done.skipped:
            self.frames_dropped += len(done.skipped)
            self._metrics.frames_dropped.inc(len(done.skipped))
        for pose in done.skipped:
            self.output.show(self, None, pose.index)
        if done.rendered is not None:
            self._publish(done.rendered)
        self._emit(done)

    def _process(self, batch: list[Arrived]) -> Processed:
        """Worker thread: resamples, advances the motion pipeline, renders the newest pose."""
        held: list[HeldVoice] = []
        poses: list[FramePose] = []
        ready_at = 0.0
        resample_s = motion_s = 0.0
        self._hush.start_trip(self._pipeline.samples_seen)
        for item in batch:
            muted = self._hush.mutes(self._pipeline.samples_seen)
            start = time.thread_time()
            converted = self._front_end.convert(item.frame)
            mid = time.thread_time()
            new_poses = [
                self._hush.apply(pose, self.clock.frame_start(pose.index))
                for pose in self._pipeline.push(converted.pipeline)
            ]
            if new_poses:
                poses, ready_at = poses + new_poses, item.arrived_s
            resample_s += mid - start
            motion_s += time.thread_time() - mid
            end_sample = self._pipeline.samples_seen
            voices = converted.voice
            if muted:  # the resampler's tail of the cleared voice, or the silence after it
                voices = [silent_voice_frame(voice.samples) for voice in voices]
            held += [HeldVoice(end_sample, voice, item.arrived_s) for voice in voices]
        self._metrics.stage_cpu.labels("resample").inc(resample_s)
        self._metrics.stage_cpu.labels("motion").inc(motion_s)
        events = [{"pose": pose, **self._events.describe(pose)} for pose in poses]
        if not poses:
            return Processed(held, None, [], events)
        posed_at = time.monotonic()
        frame = self._render(poses[-1])
        rendered = Rendered(poses[-1], frame, ready_at, posed_at)
        return Processed(held, rendered, poses[:-1], events)

    # --- output ----------------------------------------------------------------------------------

    def _publish(self, rendered: Rendered) -> None:
        """Hands the frame to the outgoing track and releases the voice it covers."""
        index = rendered.pose.index
        self.output.show(self, rendered.frame, index)
        self.timeline.append(
            FrameTimes(index, rendered.ready_at, rendered.posed_at, time.monotonic())
        )
        self.frames_rendered += 1
        self._metrics.frames_rendered.inc()
        self._release_voice(self._voice_end(index))

    def _emit(self, done: Processed) -> None:
        """Sends one event per completed frame, on the channel's frame numbers and voice clock."""
        if not self.output.is_on_air(self) or not self.output.sinks:
            return
        lag = self._pipeline.lips_lag_samples
        idle = self.output.idle is self
        for event in done.events:
            pose = event.pop("pose")
            if not isinstance(pose, FramePose):
                raise TypeError("a frame event lost its pose")
            number = self.output.show_number(self, pose.index)
            t_s = self.output.voice_time_of(self, self.clock.frame_start(pose.index) - lag)
            event.update(type="frame", frame=number, t_ms=round(1000 * t_s, 1), idle=idle)
            self.output.emit(event)

    def _render(self, pose: FramePose) -> av.VideoFrame:
        start = time.thread_time()
        frame = self._composer.frame(pose)
        self._metrics.stage_cpu.labels("render").inc(time.thread_time() - start)
        return frame

    def _voice_end(self, frame_index: int) -> int:
        """The last input sample whose voice may leave with video frame ``frame_index``."""
        return self.clock.frame_end(frame_index) - self._pipeline.lips_lag_samples

    def _release_voice(self, until_sample: int) -> None:
        now = time.monotonic()
        while self._held and self._held[0].end_sample <= until_sample:
            held = self._held.popleft()
            start = (
                held.end_sample - held.frame.samples * self.clock.sample_rate_hz // VOICE_RATE_HZ
            )
            self.output.play(self, held.frame, start)
            self._metrics.voice_delay.observe(now - held.arrived_s)
            self._recent_delays_s.append(now - held.arrived_s)

    def stats(self) -> dict[str, object]:
        """Live figures for the talk page.

        ``pipeline_delay_ms`` is the median voice hold of the last 5 s.
        """
        delays = sorted(self._recent_delays_s)
        median_ms = 1000.0 * delays[len(delays) // 2] if delays else None
        return {
            "session": self.id,
            "channel": self.channel,
            "fps": self.clock.fps,
            "lookahead_ms": 1000.0 * self._pipeline.lookahead_samples / self.clock.sample_rate_hz,
            "pipeline_delay_ms": median_ms,
            "frames_rendered": self.frames_rendered,
            "frames_dropped": self.frames_dropped,
            "consumers": len(self._peers),
        }

    # --- lifecycle -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stops tracks, closes every attached connection and the worker; safe to call twice."""
        if self.closed.is_set():
            return
        self.closed.set()
        await self.tasks.cancel_all()
        self.output.left(self)
        for pc in list(self._peers):
            await self.detach(pc)
        self._worker.shutdown(wait=False, cancel_futures=True)
        release_free_memory()
        logger.info(
            "Session(%s) closed after %d frames (%d dropped)",
            self.id,
            self.frames_rendered,
            self.frames_dropped,
        )


def _silenced(held: HeldVoice) -> HeldVoice:
    """``held`` with its samples zeroed (same length: the media clock runs on)."""
    return HeldVoice(held.end_sample, silent_voice_frame(held.frame.samples), held.arrived_s)


async def _close_quietly(pc: RTCPeerConnection, owner: str) -> None:
    """Closes ``pc``; aiortc's close can raise on a half-built connection: logged, not raised."""
    try:
        await pc.close()
    except Exception:
        logger.warning("%s: closing a peer connection failed", owner, exc_info=True)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hands memory glibc holds free back to the system (a no-op elsewhere).

    A session's codecs, renderer buffers and peer connection free tens of MB when it ends, but
    glibc keeps freed pages in its arenas: 30 sessions opened and closed in one process grew its
    RSS by 13 MB with MALLOC_ARENA_MAX=2, and by 1 MB with this call after each (Python's own heap
    grew by 0.15 MB: no object leaked). It takes about a millisecond.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
