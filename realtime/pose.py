"""What the motion stage hands the renderer for one video frame.

The mouth is described by a few parameters measured the same way on real faces (GRID landmarks
and alignments, for training) and on our renders (for evaluation), so a model trained on one drives
the other without a hand-made mapping. Lengths are in face heights: the distance between MediaPipe
face-mesh landmarks 10 (top of forehead) and 152 (chin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MOUTH_PARAMS: tuple[str, ...] = ("open", "width", "jaw", "protrude", "press", "tuck")
"""Order of the columns of every mouth-parameter array. This is the contract that viseme and
blendshape mappings read; measured on GRID s1 by ``models/motion/dataset.py`` (``load_clip``).

- ``open``: inner-lip gap, landmarks 13-14, over the frame's face height; 0 closed, ~0.12 wide open.
- ``width``: mouth-corner distance (61-291) over face height, minus the speaker's rest value;
  negative is rounded (/uw/ /w/ /r/), positive is spread (/iy/ /eh/).
- ``jaw``: jaw drop, the nose-tip-to-chin distance (1-152) minus its rest value, in rest face
  heights; 0 at rest, ~0.05 in a wide /aa/ /ay/. The chin, jawline and lower cheeks follow it.
- ``protrude``: lip protrusion/eversion, the change of the two vermilion heights (0-13 plus 14-17)
  from rest, in rest face heights; positive when the lips push forward and show more red (/uw/,
  /ow/, /b/ release, /sh/), negative when they stretch thin (/iy/ /s/). MediaPipe's depth did not
  follow rounding on GRID, so this 2-D proxy stands for protrusion.
- ``press``: 0..1, bilabial closure (/m b p/): the lips meet and roll in, whatever ``open`` says.
- ``tuck``: 0..1, labiodental (/f v/): the lower lip rises under the upper teeth, whose edge shows.

``press`` and ``tuck`` are gestures, labelled from forced-aligned phones (MediaPipe does not
resolve them at GRID's resolution); the others are geometry.
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

    def same_picture(self, other: FramePose | None) -> bool:
        """Whether ``other`` renders to exactly this frame: same mouth, eyelids and head.

        The frame index and the speech flag do not change a pixel. An idle avatar repeats its
        pose for several frames (``realtime/idle.py``), and the renderer then reuses the picture.
        """
        return (
            other is not None
            and self.blink == other.blink
            and np.array_equal(self.mouth, other.mouth)
            and np.array_equal(self.head, other.head)
        )
