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
FILL_BLUR_SIGMA_PX = 40.0  # background fill where the frame reaches past the photo
FILL_DIM = 0.85
FILL_EDGE_SIGMA_PX = 6.0  # soft edge between the photo and the fill
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
    """Resamples the photo into the output frame (area filter when shrinking).

    Where the frame reaches past the photo (close-ups, small photos) it is filled with the photo's
    edge colours blurred into a soft backdrop; plainly replicated edge pixels would streak.
    """
    s = framing.scale
    ox, oy = framing.offset_xy
    src = rgb
    sx = sy = 1.0
    if s < 1.0:  # warpAffine has no area filter: shrink with resize first, then shift
        src = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        sx, sy = src.shape[1] / rgb.shape[1], src.shape[0] / rgb.shape[0]
    k_x, k_y = s / sx, s / sy
    mat = np.array([[k_x, 0.0, -ox + 0.5 * k_x - 0.5], [0.0, k_y, -oy + 0.5 * k_y - 0.5]])
    frame = cv2.warpAffine(
        src, mat, framing.frame_wh, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    fw, fh = framing.frame_wh
    x0, y0 = -ox, -oy  # photo's top-left in the frame
    x1, y1 = x0 + rgb.shape[1] * s, y0 + rgb.shape[0] * s
    if x0 <= 0.5 and y0 <= 0.5 and x1 >= fw - 0.5 and y1 >= fh - 0.5:
        return frame
    # The replicated edges, blurred hard, continue the photo's border colours as a soft backdrop.
    fill = cv2.GaussianBlur(frame, (0, 0), FILL_BLUR_SIGMA_PX)
    fill = (fill.astype(np.float32) * FILL_DIM).astype(np.uint8)
    inside = np.zeros((fh, fw), np.float32)
    inside[
        max(int(np.ceil(y0)), 0) : int(min(y1, fh)), max(int(np.ceil(x0)), 0) : int(min(x1, fw))
    ] = 1
    alpha = cv2.GaussianBlur(inside, (0, 0), FILL_EDGE_SIGMA_PX)[..., None] * inside[..., None]
    return (fill + alpha * (frame.astype(np.float32) - fill)).astype(np.uint8)
