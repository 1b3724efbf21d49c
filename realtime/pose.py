"""What the motion stage hands the renderer for one video frame.

The mouth is described by a few geometric parameters measured the same way on real faces (GRID
landmarks, for training) and on our renders (for evaluation), so a model trained on one drives the
other
without a hand-made mapping. All lengths are in units of face height: the distance between MediaPipe
face-mesh landmarks 10 (top of forehead) and 152 (chin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MOUTH_PARAMS: tuple[str, ...] = ("open", "width")
"""Order of the columns of every mouth-parameter array.

- ``open``: inner-lip gap, landmarks 13-14, in face heights; 0 is closed, ~0.12 is wide open.
- ``width``: mouth-corner distance (landmarks 61-291) minus the speaker's rest value, in face
heights;
  negative is rounded (/uw/), positive is spread (/iy/).
"""
N_MOUTH_PARAMS = len(MOUTH_PARAMS)
REST_MOUTH = np.zeros(N_MOUTH_PARAMS, dtype=np.float32)


@dataclass(frozen=True)
class FramePose:
    """Everything that varies from frame to frame; the avatar supplies the rest.

    Attributes:
        index: video frame number on the session's media clock.
        mouth: ``(N_MOUTH_PARAMS,)`` float32, columns as in ``MOUTH_PARAMS``.
        blink: eyelid closure, 0 open .. 1 shut.
        head: ``(3,)`` float32 small idle head motion: dx, dy in face heights, roll in radians.
        speaking: whether voice activity detection heard speech in this frame.
    """

    index: int
    mouth: np.ndarray
    blink: float = 0.0
    head: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float32))
    speaking: bool = False
