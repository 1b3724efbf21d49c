"""Interruption of the mouth: after a clear it eases to rest within two frames and stays there.

The pipeline's own VAD gate closes the mouth only after its 200 ms hang-over, and audio already
inside the look-ahead would still move it. An agent that interrupts itself wants the face to stop
with the voice, so a clear overrides both until real audio follows.
"""

from __future__ import annotations

from dataclasses import replace

from lipstream.realtime.pose import FramePose

HUSH_STEP = 0.5  # after a clear the mouth eases to rest over two frames (as the VAD gate does)


class Hush:
    """The rest a ``clear`` imposes on the mouth.

    ``requested`` and ``resume_requested`` are set by the owner's controlling side (the event loop
    in a session) and read by the next ``start_trip``; the rest runs on the thread that pushes
    audio (a session's worker).
    """

    def __init__(self) -> None:
        self.requested = 0  # clears asked for (event loop)
        self.seen = 0  # clears applied (worker)
        self.resume_requested = False  # real audio follows (event loop)
        self.active = False
        self.gain = 1.0
        self.resume_at: int | None = None  # input sample from which the mouth moves again

    def start_trip(self, samples_seen: int) -> None:
        """Takes up what the event loop asked for since the last trip."""
        if self.seen != self.requested:
            self.seen = self.requested
            self.active, self.resume_at = True, None
        if self.resume_requested:
            self.resume_requested = False
            if self.active and self.resume_at is None:
                self.resume_at = samples_seen

    def mutes(self, sample: int) -> bool:
        """Whether the voice of input from ``sample`` on is silenced.

        From a clear until real audio follows: the resampler still holds a few milliseconds of the
        cleared voice, and those would leave one pipeline delay later.
        """
        return self.active and (self.resume_at is None or sample < self.resume_at)

    def apply(self, pose: FramePose, frame_start: int) -> FramePose:
        """The pose as shown: eased to rest while hushed."""
        if not self.active:
            return pose
        if self.resume_at is not None and frame_start >= self.resume_at:
            self.active, self.gain = False, 1.0
            return pose
        self.gain = max(self.gain - HUSH_STEP, 0.0)
        mouth = (pose.mouth * self.gain).astype(pose.mouth.dtype)
        return replace(pose, mouth=mouth, speaking=False)
