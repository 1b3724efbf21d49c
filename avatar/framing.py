"""Framing: where the photo lands in the output video frame and where the face crop sits in it.

A frame (at least 512x512, at most 1280x720, even sides) around the face, filled with the photo
where possible. The face view (the square the generator renders) is at most ``MAX_VIEW_PX``; the
generator itself works on at most ``MAX_CROP_PX``, so its cost is bounded, and larger views are
upscaled and blended into the frame by the renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from lipstream.avatar.rig import CHIN, FOREHEAD, face_height

CROP_PER_FACE_H = 1.6  # face crop side / face height: forehead to below the chin, cheek to cheek
MAX_CROP_PX = 256  # the generator's cost grows with its crop area; larger face views are upscaled
MIN_CROP_PX = 160  # the rig's lip and eye maps need this many pixels, whatever the photo holds
MAX_VIEW_PX = 512  # largest face view in the frame (close-ups are shrunk to fit it)
UPSCALED_VIEW_BELOW_COVER = 0.75  # 1:1 unless it shrinks the photo below 75% of a 512 px frame
MIN_FRAME_PX = 512
MAX_FRAME_W, MAX_FRAME_H = 1280, 720
FILL_BLUR_SIGMA_PX = 40.0  # background fill where the frame reaches past the photo
FILL_DIM = 0.85
FILL_EDGE_SIGMA_PX = 6.0  # soft edge between the photo and the fill
FACE_CENTRE_FROM_TOP = 0.45  # where the face centre sits in the frame, fraction of frame height
FRAMINGS = ("auto", "photo")
"""``auto``: a webcam-like head-and-shoulders frame, AUTO_FRAME_PX square, the face (landmarks
10-152) AUTO_FACE_FRACTION of its height, centred across and AUTO_FACE_CENTRE_FROM_TOP down.
``photo``: the photo itself, scaled so the face renders 1:1 where possible (the first behaviour)."""
AUTO_FRAME_PX = 512  # 512x512: a quarter of 720p's pixels to encode per session
AUTO_FACE_FRACTION = 0.45
AUTO_FACE_CENTRE_FROM_TOP = 0.42  # face centre a little above the middle leaves room for shoulders


@dataclass(frozen=True)
class Framing:
    """How the photo maps into the output frame and where the face view sits in it.

    ``frame = photo * scale - offset`` (px). The face *view* is ``view_px`` square at ``view_xy`` in
    the frame; the generator works on it at ``crop_px`` (= ``view_px`` when the face is small enough
    to render 1:1, else fewer pixels, upscaled and blended back by the renderer).
    """

    scale: float
    offset_xy: tuple[float, float]
    frame_wh: tuple[int, int]
    view_xy: tuple[int, int]
    view_px: int
    crop_px: int


def _even(x: float) -> int:
    return int(round(x / 2.0)) * 2


def _scale(photo_wh: tuple[int, int], face_h: float) -> float:
    """Photo -> frame scale.

    Rendered 1:1 (the generator's crop is the face view) unless that would leave much of a 512 px
    frame without photo (a close-up): then the photo covers the frame, as far as ``MAX_VIEW_PX``
    allows, and the face view is upscaled from the crop. Large photos are never upscaled.
    """
    cover = MIN_FRAME_PX / min(photo_wh)
    one_to_one = MAX_CROP_PX / (CROP_PER_FACE_H * face_h)
    if one_to_one >= UPSCALED_VIEW_BELOW_COVER * cover:
        return min(one_to_one, max(cover, 1.0))
    return min(cover, MAX_VIEW_PX / (CROP_PER_FACE_H * face_h))


def plan_framing(photo_wh: tuple[int, int], lm: np.ndarray, mode: str = "auto") -> Framing:
    """Chooses the output frame (>= 512x512, <= 1280x720, even) and face view for a photo.

    ``mode`` is one of ``FRAMINGS``.
    """
    if mode not in FRAMINGS:
        raise ValueError(f"framing {mode!r} is not one of {FRAMINGS}")
    pw, ph = photo_wh
    face_h = face_height(lm)
    centre = (lm[FOREHEAD, :2] + lm[CHIN, :2]) / 2.0
    if mode == "auto":
        fw = fh = AUTO_FRAME_PX
        scale = min(AUTO_FACE_FRACTION * fh, MAX_VIEW_PX / CROP_PER_FACE_H) / face_h
        from_top = AUTO_FACE_CENTRE_FROM_TOP
    else:
        scale = _scale(photo_wh, face_h)
        fw = min(max(_even(pw * scale), MIN_FRAME_PX), MAX_FRAME_W)
        fh = min(max(_even(ph * scale), MIN_FRAME_PX), MAX_FRAME_H)
        from_top = FACE_CENTRE_FROM_TOP
    offs = []
    for size_s, frame_n, c, frac in (
        (pw * scale, fw, centre[0], 0.5),
        (ph * scale, fh, centre[1], from_top),
    ):
        o = c * scale - frac * frame_n
        o = (size_s - frame_n) / 2.0 if size_s <= frame_n else min(max(o, 0.0), size_s - frame_n)
        offs.append(float(round(o)))
    view = min(_even(CROP_PER_FACE_H * face_h * scale), MAX_VIEW_PX, fw, fh)
    cx, cy = centre * scale - np.array(offs)
    # Even, so the view starts on a chroma sample of the yuv420p frame (server/media/frames.py).
    x0 = min(max(_even(cx - view / 2), 0), fw - view)
    y0 = min(max(_even(cy - view / 2), 0), fh - view)
    return Framing(scale, (offs[0], offs[1]), (fw, fh), (x0, y0), view, _crop_px(view, scale))


def _crop_px(view: int, scale: float) -> int:
    """Side of the square the generator works on for a ``view`` px face view (even).

    Never more pixels than the photo holds there: a face enlarged into the frame (``scale`` > 1)
    is rendered at its photo resolution and upscaled with the rest of the view, which costs ~1 ms
    where the generator's cost grows with its area (10.3 ms at 256 px, 5 ms at 172 px).
    """
    photo_px = _even(view / scale) if scale > 1.0 else view
    return min(view, MAX_CROP_PX, max(photo_px, MIN_CROP_PX))


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
    alpha = cv2.GaussianBlur(inside, (0, 0), FILL_EDGE_SIGMA_PX) * inside
    alpha = np.where(alpha > 0.999, 1.0, alpha)[..., None]  # keep the photo's own pixels exact
    return np.rint(fill + alpha * (frame.astype(np.float32) - fill)).astype(np.uint8)
