"""A stand-in for the streaming encoder that replays fixed posteriors with the encoder's timing.

Used where exact phones are wanted instead of the encoder's guesses: the reenactment bench's
``aligned`` driver (forced-aligned phones, an upper bound) and the motion tests. numpy only.
"""

from __future__ import annotations

import numpy as np

HOP_SAMPLES = 160  # one posterior frame per 10 ms at 16 kHz
SAMPLES_PER_MS = 16


class ScriptedEncoder:
    """Releases posterior frame ``j`` after ``(j + 1) * HOP_SAMPLES`` + look-ahead samples."""

    def __init__(self, posteriors: np.ndarray, lookahead_ms: int = 50) -> None:
        self.posteriors = posteriors
        self.lookahead_ms = lookahead_ms
        self.lookahead_samples = lookahead_ms * SAMPLES_PER_MS
        self.reset()

    def reset(self) -> None:
        """Starts the replay again from frame 0."""
        self._seen = 0
        self._emitted = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Consumes audio (only its length matters); returns the posterior frames now due."""
        self._seen += len(audio)
        ready = (self._seen - self.lookahead_samples) // HOP_SAMPLES
        ready = min(len(self.posteriors), max(0, ready))
        out = self.posteriors[self._emitted : ready]
        self._emitted = max(self._emitted, ready)
        return out

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """As ``push``: a replay has no network to skip."""
        return self.push(audio)

    def rehear(self) -> np.ndarray:
        """Nothing to restore: ``push_quiet`` replayed the real posteriors."""
        return self.posteriors[:0]
