"""Mouth opening measured from pixels with MediaPipe face mesh, the same way on renders and real
video.

Opening = inner-lip gap (landmarks 13-14) over face height (landmarks 10-152), the measure the
issues state their floors in. Used by the tests and the bench harnesses; never by the server.
"""

from __future__ import annotations

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152


class MouthMeter:
    """Measures one frame at a time, tracking the face as a video (landmarks carry over)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=1, refine_landmarks=True
        )

    def __call__(self, frame: np.ndarray) -> float:
        """Opening of an RGB uint8 frame; NaN if no face is found."""
        result = self._mesh.process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            return float("nan")
        points = result.multi_face_landmarks[0].landmark
        height, width = frame.shape[:2]
        pick = (UPPER_INNER_LIP, LOWER_INNER_LIP, FOREHEAD, CHIN)
        upper, lower, top, chin = (
            np.array([points[i].x * width, points[i].y * height]) for i in pick
        )
        return float(np.linalg.norm(upper - lower) / np.linalg.norm(top - chin))

    def close(self) -> None:
        """Frees the MediaPipe graph."""
        self._mesh.close()


def mouth_openings(frames: list[np.ndarray]) -> np.ndarray:
    """``(n,)`` float32 openings for RGB uint8 frames; NaN where no face was found."""
    meter = MouthMeter()
    try:
        return np.array([meter(frame) for frame in frames], dtype=np.float32)
    finally:
        meter.close()
