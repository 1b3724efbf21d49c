"""The engine as a Python library: a photo in, then PCM in and frames, voice and events out.

The same stages ``lipstream serve`` and ``lipstream render`` run (``realtime/``: driver, VAD,
motion, renderer; the server's audio front end and interruption), with no web stack, no event
loop and no threads: call ``push`` with audio as it arrives and get back the frames it completed,
each with the voice that goes with it and its rig event. ``clear`` interrupts as ``/ws/ingest``'s
``{"type": "clear"}`` does.

Example (the README shows it; ``tests/test_api.py`` runs that very text)::

    from lipstream.server.api import Avatar
    avatar = Avatar.from_photo("photo.png")
    stream = avatar.stream()
    for frame in stream.push(pcm_16k_s16le, rate_hz=16_000):
        frame.image, frame.audio, frame.event
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lipstream.avatar import build_avatar
from lipstream.realtime.avatar import Avatar as PreparedAvatar
from lipstream.realtime.clock import SAMPLE_RATE_HZ, MediaClock
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer
from lipstream.realtime.visemes import make_driver_with_events

from .media.hush import Hush
from .media.ingest import AudioFrontEnd, pcm_frame

__all__ = ["Avatar", "AvatarFrame", "AvatarStream"]


@dataclass(frozen=True)
class AvatarFrame:
    """One video frame of a stream.

    Attributes:
        index: frame number from the stream's start (frame n covers audio [n/fps, (n+1)/fps)).
        image: ``(H, W, 3)`` uint8 RGB, the whole picture.
        audio: ``(16000 / fps,)`` float32 mono 16 kHz: the voice to play with this frame (the
            input delayed by the driver's lips lag, silenced by ``clear``).
        event: the rig event, as ``/ws/events`` sends it: ``frame``, ``t_ms`` (the start of
            ``audio`` on the returned voice's clock), ``viseme``, ``weights``, ``speaking``.
    """

    index: int
    image: np.ndarray
    audio: np.ndarray
    event: dict[str, Any]


class Avatar:
    """A prepared photo with its renderer; make one ``stream()`` per speaker."""

    def __init__(self, renderer: Renderer, fps: int = 25, driver: str = "learned") -> None:
        self.renderer = renderer
        self.fps = fps
        self.driver = driver

    @classmethod
    def from_photo(
        cls, photo: str | Path, fps: int = 25, driver: str = "learned", framing: str = "auto"
    ) -> Avatar:
        """Prepares ``photo`` (cached by content hash, as ``lipstream avatar build`` does)."""
        built = build_avatar(Path(photo), framing=framing)
        return cls(Renderer(PreparedAvatar.load(built.path)), fps=fps, driver=driver)

    def stream(self) -> AvatarStream:
        """A fresh stream: its own driver state, media clock at sample 0."""
        return AvatarStream(self)


class AvatarStream:
    """One speaker's audio in, frames out; not thread-safe (one caller at a time)."""

    def __init__(self, avatar: Avatar) -> None:
        self._renderer = avatar.renderer
        self._clock = MediaClock(fps=avatar.fps)
        driver, self._events = make_driver_with_events(avatar.driver, self._clock)
        self._pipeline = MotionPipeline(self._clock, driver)
        self._front_end = AudioFrontEnd()
        self._hush = Hush()
        self._voice = np.zeros(0, np.float32)  # input not yet returned with a frame
        self._voice_first = 0  # input sample index of self._voice[0]
        self._silenced_until = 0  # input samples before this are returned silent (a clear)

    @property
    def samples_seen(self) -> int:
        """16 kHz input samples pushed so far: the stream's media clock."""
        return self._pipeline.samples_seen

    def push(self, pcm: bytes | np.ndarray, rate_hz: int = SAMPLE_RATE_HZ) -> list[AvatarFrame]:
        """Pushes mono audio; returns the frames it completed, oldest first.

        Args:
            pcm: s16le bytes, or an ``(n,)`` int16 or float32 (in [-1, 1]) array.
            rate_hz: its sample rate; resampled to 16 kHz with libswresample.

        Raises:
            ValueError: for odd-length bytes, another dtype, or a non-positive rate.
        """
        samples = _as_int16(pcm)
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        if samples.any() and (self._hush.active or self._hush.requested != self._hush.seen):
            self._hush.resume_requested = True  # real audio lifts a clear's rest
            self._silenced_until = self._pipeline.samples_seen
        audio = self._front_end.convert(pcm_frame(samples.tobytes(), rate_hz)).pipeline
        self._hush.start_trip(self._pipeline.samples_seen)
        self._voice = np.concatenate([self._voice, audio])
        poses = self._pipeline.push(audio)
        return [self._frame(pose) for pose in poses]

    def clear(self) -> None:
        """Interrupts: voice not yet returned falls silent; the mouth rests within two frames."""
        self._hush.requested += 1
        # Until real audio follows: the resampler still holds a little of the cleared voice.
        self._silenced_until = 2**62

    def _frame(self, pose: FramePose) -> AvatarFrame:
        pose = self._hush.apply(pose, self._clock.frame_start(pose.index))
        lag = self._pipeline.lips_lag_samples
        start = self._clock.frame_start(pose.index) - lag
        end = self._clock.frame_end(pose.index) - lag
        audio = self._voice_slice(start, end)
        event = {
            "type": "frame",
            "frame": pose.index,
            "t_ms": round(1000 * max(start, 0) / SAMPLE_RATE_HZ, 1),
            **self._events.describe(pose),
        }
        return AvatarFrame(pose.index, self._renderer.render(pose), audio, event)

    def _voice_slice(self, start: int, end: int) -> np.ndarray:
        """Input samples [start, end) (zeros before 0 and where a clear silenced them)."""
        out = np.zeros(end - start, np.float32)
        lo, hi = max(start, self._voice_first), min(end, self._voice_first + len(self._voice))
        if hi > lo:
            out[lo - start : hi - start] = self._voice[
                lo - self._voice_first : hi - self._voice_first
            ]
        silent = min(self._silenced_until, end) - start
        if silent > 0:
            out[:silent] = 0.0
        keep_from = max(end - self._voice_first, 0)  # later frames never reach back before end
        self._voice = self._voice[keep_from:]
        self._voice_first += keep_from
        return out


def _as_int16(pcm: bytes | np.ndarray) -> np.ndarray:
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise ValueError("PCM bytes must be whole s16le samples (an even length)")
        return np.frombuffer(pcm, dtype="<i2")
    array = np.asarray(pcm).reshape(-1)
    if array.dtype == np.int16:
        return array
    if array.dtype in (np.float32, np.float64):
        return (np.clip(array, -1.0, 1.0) * 32767).astype(np.int16)
    raise ValueError(f"PCM arrays must be int16 or float32, got {array.dtype}")
