"""Framing: where the photo lands in the output video frame and where the face crop sits in it.

A head-and-shoulders frame (at least 512x512, at most 1280x720, even sides) around the face, scaled
so the face crop the generator works on is at most ``MAX_CROP_PX`` square at 1:1 with the frame
pixels: no resampling between the crop and the frame, so the paste is seamless and the cost bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from lipstream.avatar.rig import CHIN, FOREHEAD, face_height

CROP_PER_FACE_H = 1.6  # face crop side / face height: forehead to below the chin, cheek to cheek
MAX_CROP_PX = 256  # the generator's cost grows with the crop area; the frame is scaled to fit
MIN_FRAME_PX = 512
MAX_FRAME_W, MAX_FRAME_H = 1280, 720
FACE_CENTRE_FROM_TOP = 0.45  # where the face centre sits in the frame, fraction of frame height


@dataclass(frozen=True)
class Framing:
    """How the photo maps into the output frame and where the face crop sits in it.

    ``frame = photo * scale - offset`` (px); the crop is ``crop_px`` square at ``crop_xy``.
    """

    scale: float
    offset_xy: tuple[float, float]
    frame_wh: tuple[int, int]
    crop_xy: tuple[int, int]
    crop_px: int


def _even(x: float) -> int:
    return int(round(x / 2.0)) * 2


def plan_framing(photo_wh: tuple[int, int], lm: np.ndarray) -> Framing:
    """Chooses the output frame (>= 512x512, <= 1280x720, even) and face crop for a photo."""
    pw, ph = photo_wh
    face_h = face_height(lm)
    centre = (lm[FOREHEAD, :2] + lm[CHIN, :2]) / 2.0
    scale = min(MAX_CROP_PX / (CROP_PER_FACE_H * face_h), max(1.0, MIN_FRAME_PX / min(pw, ph)))
    fw = min(max(_even(pw * scale), MIN_FRAME_PX), MAX_FRAME_W)
    fh = min(max(_even(ph * scale), MIN_FRAME_PX), MAX_FRAME_H)
    offs = []
    for size_s, frame_n, c, frac in (
        (pw * scale, fw, centre[0], 0.5),
        (ph * scale, fh, centre[1], FACE_CENTRE_FROM_TOP),
    ):
        o = c * scale - frac * frame_n
        o = (size_s - frame_n) / 2.0 if size_s <= frame_n else min(max(o, 0.0), size_s - frame_n)
        offs.append(float(round(o)))
    crop = min(_even(CROP_PER_FACE_H * face_h * scale), MAX_CROP_PX, fw, fh)
    cx, cy = centre * scale - np.array(offs)
    x0 = int(min(max(round(cx - crop / 2), 0), fw - crop))
    y0 = int(min(max(round(cy - crop / 2), 0), fh - crop))
    return Framing(scale, (offs[0], offs[1]), (fw, fh), (x0, y0), crop)


def render_frame(rgb: np.ndarray, framing: Framing) -> np.ndarray:
    """Resamples the photo into the output frame (area filter when shrinking, edges replicated)."""
    s = framing.scale
    ox, oy = framing.offset_xy
    mat = np.array([[s, 0.0, -ox + 0.5 * s - 0.5], [0.0, s, -oy + 0.5 * s - 0.5]])
    src = rgb
    if s < 1.0:  # warpAffine has no area filter: shrink with resize first, then shift
        small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]
        mat = np.array(
            [[s / sx, 0.0, -ox + 0.5 * s / sx - 0.5], [0.0, s / sy, -oy + 0.5 * s / sy - 0.5]]
        )
        src = small
    return cv2.warpAffine(
        src, mat, framing.frame_wh, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
