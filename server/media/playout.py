"""Pushed PCM played out on the wall clock, in segments that an engine can interrupt.

A TTS engine or voice agent pushes audio faster than real time and interrupts itself often. The
playout keeps what it was given in 20 ms frames, feeds one frame per 20 ms to the session (silence
when nothing is queued, so the avatar idles), and reports what it plays: the start and end of each
segment, how much is queued, and where a segment was cut when the engine cleared the queue. These
are the semantics of LiveKit's avatar protocol (``lk.clear_buffer``, ``lk.playback_started``,
``lk.playback_finished``), in our own words.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av

from .ingest import SILENCE_STEP_S, pcm_frame

RESYNC_AFTER_S = 0.2  # if the loop stalled this long, restart the playout schedule, no burst
QUEUED_EVERY_FRAMES = 10  # a ``queued`` report every 200 ms of playout

Notify = Callable[[dict[str, Any]], None]


def idle_step_s(fps: int) -> float:
    """The longest whole number of 20 ms steps within one video frame (40 ms at 25 fps).

    Fed that much at a time, a session completes at most one frame a feed, so none is skipped.
    """
    steps = max(1, int(1000 / fps) // round(1000 * SILENCE_STEP_S))
    return steps * SILENCE_STEP_S


class Clearable(Protocol):
    """What the playout drives: ``AvatarSession``, or a fake in tests."""

    async def feed(self, frame: av.AudioFrame) -> None:
        """Runs one input frame through the pipeline."""
        ...

    def clear(self) -> float:
        """Silences the voice not yet sent and eases the mouth to rest; returns its seconds."""
        ...

    def resume(self) -> None:
        """Real audio follows: lifts the rest a ``clear`` imposed."""
        ...


class QueueFull(Exception):
    """Pushed audio would take the queue past its cap; nothing of it was queued."""


@dataclass
class _Segment:
    number: int
    frames: int = 0  # 20 ms frames queued for it so far
    played: int = 0  # of which fed to the session
    ended: bool = False  # the engine sent ``end``: no more audio comes for it
    started: bool = False


class PcmPlayout:
    """Cuts pushed PCM into 20 ms frames and feeds them to a session on the wall clock.

    ``step_s`` sets a longer frame where nothing needs 20 ms: a channel's idle face is fed a video
    frame's silence at a time (``idle_step_s``), half the trips to its worker thread.

    Use from the event loop only. ``notify`` receives the server-to-client messages
    (``playback_started``, ``playback_finished``, ``queued``) as dicts; it must not block.
    """

    def __init__(
        self,
        session: Clearable,
        rate_hz: int,
        max_queue_s: float,
        notify: Notify,
        step_s: float = SILENCE_STEP_S,
    ) -> None:
        self._session = session
        self._rate_hz = rate_hz
        self._step_s = step_s  # the audio of one feed
        self._frame_bytes = 2 * int(round(rate_hz * step_s))
        self._frames: deque[tuple[_Segment, bytes]] = deque()
        self._limit = int(round(max_queue_s / step_s))
        self._partial = b""
        self._notify = notify
        self._segment = _Segment(0)  # the one new audio joins
        self._playing: _Segment | None = None
        self._hushed = False  # a clear silenced the session; real audio lifts it

    @property
    def queued_s(self) -> float:
        """Seconds of PCM waiting to play."""
        return len(self._frames) * self._step_s

    def push(self, pcm: bytes) -> None:
        """Queues s16le PCM for the open segment; raises ``QueueFull`` past the cap."""
        data = self._partial + pcm
        whole = len(data) - len(data) % self._frame_bytes
        count = whole // self._frame_bytes
        if len(self._frames) + count > self._limit:
            raise QueueFull(
                f"the queue holds {self.queued_s:.1f} s; this message would take it past the "
                f"{self._limit * self._step_s:.0f} s cap (--max-queue-s); it was dropped"
            )
        if self._segment.ended:
            self._segment = _Segment(self._segment.number + 1)
        segment = self._segment
        for start in range(0, whole, self._frame_bytes):
            self._frames.append((segment, data[start : start + self._frame_bytes]))
        segment.frames += count
        self._partial = data[whole:]

    def end(self) -> None:
        """Closes the open segment; audio pushed next starts a new one."""
        self._partial = b""
        if self._segment.frames == 0:
            return  # nothing was pushed since the last boundary: no empty segment
        self._segment.ended = True
        if self._segment.played == self._segment.frames and self._segment.started:
            self._finish(self._segment, interrupted=False)

    def clear(self) -> None:
        """Drops every queued frame at once; the session's voice falls silent, its mouth rests.

        ``playback_finished`` then says where the segment was cut: the audio fed to the session,
        less the voice the session still held (it never reaches a listener).
        """
        current = self._playing or (self._frames[0][0] if self._frames else None)
        self._frames.clear()
        self._partial = b""
        unheard_s = self._session.clear()  # fed to the session, but its voice had not left
        if current is not None:
            self._finish(current, interrupted=True, unheard_s=unheard_s)
        if not self._segment.ended and self._segment.frames:
            self._segment.ended = True  # the next push starts a new segment
        self._playing = None
        self._hushed = True

    def _finish(self, segment: _Segment, interrupted: bool, unheard_s: float = 0.0) -> None:
        """Reports ``segment`` done; its position is what left the server with the face."""
        if self._playing is segment:
            self._playing = None
        segment.ended = True
        position_s = max(segment.played * self._step_s - unheard_s, 0.0)
        self._notify(
            {
                "type": "playback_finished",
                "segment": segment.number,
                "position_s": round(position_s, 3),
                "interrupted": interrupted,
            }
        )

    def _next_chunk(self, silence: bytes) -> bytes:
        if not self._frames:
            return silence
        segment, chunk = self._frames.popleft()
        if not segment.started:
            segment.started = True
            self._playing = segment
            self._notify({"type": "playback_started", "segment": segment.number})
        segment.played += 1
        if segment.ended and segment.played == segment.frames:
            self._finish(segment, interrupted=False)
        return chunk

    async def run(self) -> None:
        """Feeds one frame every 20 ms, silence when nothing is queued; runs until cancelled."""
        silence = bytes(self._frame_bytes)
        due = time.monotonic()
        fed = 0
        while True:
            due += self._step_s
            delay = due - time.monotonic()
            if delay < -RESYNC_AFTER_S:
                due = time.monotonic()
            elif delay > 0:
                await asyncio.sleep(delay)
            chunk = self._next_chunk(silence)
            if self._hushed and chunk is not silence:
                self._hushed = False
                self._session.resume()
            await self._session.feed(pcm_frame(chunk, self._rate_hz))
            fed += 1
            if fed % QUEUED_EVERY_FRAMES == 0:
                self._notify({"type": "queued", "ms": round(1000 * self.queued_s)})
