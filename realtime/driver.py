"""The contract every mouth driver meets, and the choice of one by name.

The server and ``lipstream render`` both call ``make_driver``, so neither knows which driver it
runs, and rendering offline does not import the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .clock import MediaClock

DRIVERS = ("learned", "loudness")
"""Driver names ``make_driver`` knows (``--driver`` on the command line)."""


class MouthDriver(Protocol):
    """Turns 16 kHz mono audio into mouth parameters, one row per video frame.

    A driver is stateful and owned by one session; call it from one thread at a time. It is timed
    by the samples it has been given, never by the wall clock.

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


@runtime_checkable
class RestsInSilence(Protocol):
    """A driver that can skip its work for frames the pipeline will show at rest anyway."""

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """As ``MouthDriver.push``, but every frame it completes will be shown at rest.

        The rows may be anything of the right shape; the driver must stay ready for the speech
        that follows (``LearnedDriver.push_quiet``).
        """
        ...


def make_driver(name: str, clock: MediaClock, voice_lead_ms: int = 0) -> MouthDriver:
    """The mouth driver called ``name`` (one of ``DRIVERS``) for one session.

    ``voice_lead_ms`` moves the learned driver's mouth earlier against the voice
    (``LearnedDriver``); the loudness driver hears no future, so it ignores it.
    """
    if name == "loudness":
        from .loudness import LoudnessDriver

        return LoudnessDriver(clock)
    if name == "learned":
        from .motion import LearnedDriver  # loads the shipped ONNX models

        return LearnedDriver(clock, voice_lead_ms=voice_lead_ms)
    raise ValueError(f"driver must be one of {DRIVERS}, got {name!r}")
