"""The media clock: input-audio sample indices mapped to video frames.

Everything in ``realtime/`` is timed by the index of the 16 kHz input sample, never by wall time, so
the live server and offline ``lipstream render`` produce identical frames for identical audio. Video
frame ``n`` covers audio ``[frame_start(n), frame_start(n + 1))``.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE_HZ = 16_000
"""Rate of the pipeline's audio after the front-end has resampled it (mono float32)."""


@dataclass(frozen=True)
class MediaClock:
    """Maps sample indices to video frame numbers at a fixed frame rate.

    Frame boundaries are rounded down to whole samples, so fps values that do not divide the sample
    rate (30 fps: 533.3 samples) still tile the audio exactly, with no drift over hours.
    """

    fps: int = 25
    sample_rate_hz: int = SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be between 1 and 60, got {self.fps}")

    def frame_start(self, frame_index: int) -> int:
        """First input sample of video frame ``frame_index``."""
        return frame_index * self.sample_rate_hz // self.fps

    def frame_end(self, frame_index: int) -> int:
        """One past the last input sample of video frame ``frame_index``."""
        return self.frame_start(frame_index + 1)

    def frames_ready(self, samples_seen: int, lookahead_samples: int) -> int:
        """Number of frames whose audio, plus the look-ahead, lies within ``samples_seen``
        samples."""
        usable = samples_seen - lookahead_samples
        if usable <= 0:
            return 0
        # frame_end(n) = (n + 1) * rate // fps <= usable, solved for the count n + 1 (exact
        # integers).
        return ((usable + 1) * self.fps - 1) // self.sample_rate_hz
