"""One face followed through a video: the detector on keyframes, the 478-point mesh on every frame.

The detectors run only when there is no face to follow (the first frame, or after the face was
lost): ``avatar.detect.fit_landmarks`` then finds it. Between keyframes the mesh runs on the region
the previous frame's landmarks give, as MediaPipe's own video mode does
(``face_landmarks_to_roi.pbtxt``: their bounding box, 1.5x, square, turned so the eyes 33 and 263
are level), which skips the detector and the 512 px crop it needs: 15 -> 8 ms a frame on GRID.
``smooth_landmarks`` then takes the mesh's frame-to-frame jitter out, never across a gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lipstream.avatar import detect
from lipstream.avatar.errors import NoFaceError
from lipstream.avatar.rig import CHEEK_LEFT_IMG, CHEEK_RIGHT_IMG, CHIN, FOREHEAD, NOSE_TIP

from .media import VideoInfo

ROI_SCALE = 1.5  # face_landmarks_to_roi.pbtxt: RectTransformationCalculator scale_x, scale_y
EYE_START, EYE_END = 33, 263  # its rotation keypoints (DetectionsToRectsCalculator)
MIN_FACE_H_PX = 24.0  # below this the mesh is a guess and the rig has no lips to move
SMOOTH_KERNEL = np.array([1.0, 2.0, 1.0]) / 4.0  # +-1 frame: the head's mesh jitter out
MAX_PROFILE_ASYMMETRY = 0.6  # as avatar/build.py: beyond ~50 degrees of yaw the rig does not fit


class FaceTracker:
    """Landmarks of one face per frame, ``(478, 3)`` float32 frame px, or None where there is none.

    Args:
        pick: ``(x, y)`` frame px; the face whose box centre is nearest is followed. None: the
            largest face.
        follow: landmarks of the face in the frame before the first one: it is followed from
            there, with no keyframe (a chunk tracked again from where the previous one ended).

    Stateful (it follows the face from frame to frame); call from one thread, frames in order.
    """

    def __init__(
        self, pick: tuple[float, float] | None = None, follow: np.ndarray | None = None
    ) -> None:
        self._pick = pick
        self._last: np.ndarray | None = follow
        self.keyframes = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """Landmarks of the followed face in ``rgb`` (``(H, W, 3)`` uint8), or None."""
        if self._last is not None:
            lm = self._checked(rgb, mesh_in_region(rgb, *region_from_landmarks(self._last)))
            if lm is not None:
                self._last = lm
                return lm
        box = self._detect(rgb)
        lm = self._fit(rgb, box) if box is not None else None
        self._last = lm
        return lm

    def _detect(self, rgb: np.ndarray) -> detect.FaceBox | None:
        self.keyframes += 1
        boxes = detect.detect_faces(rgb)
        if not boxes:
            return None
        target = self._pick
        if target is None and self._last is not None:
            target = (float(self._last[NOSE_TIP, 0]), float(self._last[NOSE_TIP, 1]))
        if target is None:
            return boxes[0]  # largest first
        tx, ty = target
        return min(
            boxes, key=lambda b: (b.x + b.width / 2 - tx) ** 2 + (b.y + b.height / 2 - ty) ** 2
        )

    def _fit(self, rgb: np.ndarray, box: detect.FaceBox) -> np.ndarray | None:
        try:
            return self._checked(rgb, detect.fit_landmarks(rgb, box))
        except NoFaceError:
            return None

    @staticmethod
    def _checked(rgb: np.ndarray, lm: np.ndarray | None) -> np.ndarray | None:
        """``lm`` if its nose is in the frame and the face is large enough to re-lip."""
        if lm is None:
            return None
        h, w = rgb.shape[:2]
        cx, cy = lm[NOSE_TIP, 0], lm[NOSE_TIP, 1]
        face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))
        if not (0 <= cx < w and 0 <= cy < h) or face_h < MIN_FACE_H_PX:
            return None
        return lm


def region_from_landmarks(lm: np.ndarray) -> tuple[float, float, float, float]:
    """The next frame's mesh region ``(cx, cy, side, angle)`` (px, radians) from these landmarks."""
    x0, y0 = lm[:, :2].min(axis=0)
    x1, y1 = lm[:, :2].max(axis=0)
    a, b = lm[EYE_START, :2], lm[EYE_END, :2]
    angle = -np.arctan2(-(b[1] - a[1]), b[0] - a[0])
    angle = angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))
    side = ROI_SCALE * max(x1 - x0, y1 - y0)
    return float((x0 + x1) / 2), float((y0 + y1) / 2), float(side), float(angle)


def mesh_in_region(
    rgb: np.ndarray, cx: float, cy: float, side: float, angle: float
) -> np.ndarray | None:
    """The refined 478-point mesh in one rotated square region: ``(478, 3)`` float32 px, or None.

    ``avatar/detect.py``'s own, so the points are the ones ``fit_landmarks`` gives.
    """
    pts = detect.mesh_in_region(rgb, cx, cy, side, angle)
    return None if pts is None else pts.astype(np.float32)


def is_frontal(lm: np.ndarray) -> bool:
    """Whether the nose sits near the face's middle (``avatar/build.py``'s frontal test)."""
    nose, left, right = lm[NOSE_TIP, 0], lm[CHEEK_RIGHT_IMG, 0], lm[CHEEK_LEFT_IMG, 0]
    if right <= left:
        return False
    return abs(((nose - left) - (right - nose)) / (right - left)) <= MAX_PROFILE_ASYMMETRY


def smooth_landmarks(points: np.ndarray) -> np.ndarray:
    """``(T, 478, 3)`` float32 landmarks (NaN rows: no face) filtered by ``SMOOTH_KERNEL``.

    Each run of consecutive frames with a face is filtered on its own, its ends repeated, so a face
    never blends with the gap beside it. NaN rows stay NaN. The lips (the mesh's lip refinement
    points) are left as measured: smoothed lips under-state a fast opening, and the part of the
    frame's own opening that is not closed shows through (GRID s1 dev, 10 pairs: r(dubbed, A's
    lips) 0.531 smoothed, 0.503 not; r(dubbed, B) 0.759 and 0.758).
    """
    out = points.copy()
    lips = detect._refinement()["lips"]
    found = ~np.isnan(points[:, 0, 0])
    half = len(SMOOTH_KERNEL) // 2
    t = 0
    while t < len(points):
        if not found[t]:
            t += 1
            continue
        end = t
        while end < len(points) and found[end]:
            end += 1
        run = points[t:end].astype(np.float64)
        padded = np.concatenate([run[:1].repeat(half, 0), run, run[-1:].repeat(half, 0)])
        acc = np.zeros_like(run)
        for k, weight in enumerate(SMOOTH_KERNEL):
            acc += weight * padded[k : k + len(run)]
        out[t:end] = acc.astype(np.float32)
        out[t:end, lips] = points[t:end, lips]
        t = end
    return out


def any_face(path: Path, info: VideoInfo, samples: int) -> bool:
    """Whether the detector finds a face in any of ``samples`` frames spread over the video.

    A cheap check before a job is accepted (a seek and one detector run per sample).
    """
    import av

    duration = info.duration_s or 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for k in range(samples):
            at = duration * k / samples
            if k and stream.time_base is not None:
                container.seek(int(at / stream.time_base), stream=stream)
            frame = next(container.decode(stream), None)
            if frame is None:
                continue
            rgb = frame.to_ndarray(format="rgb24")[: info.height, : info.width]
            if detect.detect_faces(np.ascontiguousarray(rgb)):
                return True
            if duration <= 0:
                return False
    return False
