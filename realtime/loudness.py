"""The loudness driver: mouth opening from the voice's level.

It needs no model and almost no CPU, so it is the fallback on weak machines and the baseline the
learned driver must beat (on held-out GRID clips it reaches r = 0.52-0.57 against real lips). It
only opens and closes the mouth; it cannot round or spread the lips.
"""

from __future__ import annotations

import numpy as np

from .clock import MediaClock
from .pose import N_MOUTH_PARAMS

MAX_OPEN_FACE_HEIGHTS = 0.085  # a loud vowel; GRID s1's widest /aa/ is about 0.09
SPEECH_ABOVE_FLOOR_DB = 9.0  # level above the noise floor where the mouth starts to open
MIN_RANGE_DB = 18.0  # floor-to-peak span that maps onto closed..fully open
FLOOR_RISE_DB_PER_S = (
    1.5  # the floor follows slowly rising noise, and drops at once to quieter input
)
PEAK_DECAY_DB_PER_S = 2.0  # the peak forgets a shout within ~10 s
RELEASE_PER_FRAME = (
    0.55  # closing is eased over ~2 frames; opening follows at once (onsets stay sharp)
)
SILENCE_DB = -90.0


class LoudnessDriver:
    """Implements ``MouthDriver`` from frame RMS level with an adaptive floor and peak.

    Look-ahead is zero: frame n is emitted as soon as its own audio has arrived.
    """

    lookahead_samples = 0
    lips_lag_samples = 0  # the mouth opens in the frame where the level rises

    def __init__(self, clock: MediaClock) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forgets all audio and the learned levels."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = 0  # sample index of self._pending[0]
        self._next_frame = 0
        self._floor_db = -60.0
        self._peak_db = -20.0
        self._open = 0.0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """See ``MouthDriver.push``."""
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        opens = []
        while True:
            start = self._clock.frame_start(self._next_frame) - self._pending_start
            end = self._clock.frame_end(self._next_frame) - self._pending_start
            if end > len(self._pending):
                break
            opens.append(self._frame_open(self._pending[start:end]))
            self._next_frame += 1
        done = self._clock.frame_start(self._next_frame) - self._pending_start
        self._pending = self._pending[done:]
        self._pending_start += done
        rows = np.zeros((len(opens), N_MOUTH_PARAMS), dtype=np.float32)
        rows[:, 0] = opens
        return rows

    def _frame_open(self, frame: np.ndarray) -> float:
        duration_s = len(frame) / self._clock.sample_rate_hz
        level_db = 10.0 * np.log10(float(np.mean(frame * frame)) + 1e-9)
        level_db = max(level_db, SILENCE_DB)
        self._floor_db = min(level_db, self._floor_db + FLOOR_RISE_DB_PER_S * duration_s)
        self._peak_db = max(level_db, self._peak_db - PEAK_DECAY_DB_PER_S * duration_s)
        start_db = self._floor_db + SPEECH_ABOVE_FLOOR_DB
        span_db = max(self._peak_db - start_db, MIN_RANGE_DB)
        target = float(np.clip((level_db - start_db) / span_db, 0.0, 1.0)) ** 0.7
        if target >= self._open:
            self._open = target
        else:
            self._open += (target - self._open) * RELEASE_PER_FRAME
        return self._open * MAX_OPEN_FACE_HEIGHTS
