"""The contract every mouth driver meets, so the server never knows which one it runs."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class MouthDriver(Protocol):
    """Turns 16 kHz mono audio into mouth parameters, one row per video frame.

    A driver is stateful and owned by one session; call it from one thread at a time. It is timed
    by the
    samples it has been given, never by the wall clock.

    Attributes:
        lookahead_samples: audio the driver must see past the end of a frame before it can emit that
            frame. Counted in the pipeline delay.
        lips_lag_samples: how long after a sound starts this driver's lips visibly respond, measured
            (bench/latency.py); the server holds the returned voice that much longer so that voice
            and lips arrive together.
    """

    lookahead_samples: int
    lips_lag_samples: int

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Consumes ``(n,)`` float32 samples in [-1, 1] and returns ``(k, N_MOUTH_PARAMS)`` float32.

        The ``k`` rows are the frames completed by this call, in order, continuing from the previous
        call; ``k`` may be 0. Chunk boundaries never change the output.
        """
        ...

    def reset(self) -> None:
        """Forgets all audio, as if newly constructed."""
        ...
