"""One video frame re-lipped: the frame's own mouth warped to the shape the new audio asks for.

Per frame, at the generator's crop size (``avatar/framing.py``'s ``CROP_PER_FACE_H`` face heights,
at most ``MAX_CROP_PX``): the frame's lips are closed along their own seam (``avatar/rig.py``
``close_mouth``, as the avatar builder closes a photo's), the rig is fitted to the frame's own
landmarks, and the live path's generator ONNX renders the target mouth from there. Jaw, width and
protrusion are given to the generator as the change from the frame's own shape, so a frame whose
jaw already hangs open is not dropped a second time. The render is pasted back with a soft mask
over the lower face only: eyes, brows, head motion and background stay the frame's own pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from lipstream.avatar import rig
from lipstream.avatar.framing import CROP_PER_FACE_H, MAX_CROP_PX
from lipstream.realtime.avatar import MAP_CHANNELS, MAX_JAW, RIG_FIELDS
from lipstream.realtime.pose import N_MOUTH_PARAMS
from lipstream.realtime.render import apply_generator, generator_session, spread_gain

EYE_DISTANCE = (33, 263)  # outer eye corners: a length that speech does not change
MIN_VIEW_PX = 32
MASK_MARGIN = 1.15  # the paste mask reaches this far past the fields the generator can move
MASK_FEATHER = 0.3  # of the mask's radius, over which it fades to the frame's own pixels
MASK_GRID_STEP = 4  # the mask is computed on a grid this much coarser than the crop
# The frame's lips are closed over 1.15 times their measured gap: the mesh's inner-lip points sit a
# little inside the visible gap, and what stays open shows the frame's own speech through the dub.
# GRID s1 dev, 10 pairs (bench/dub_pairs.py): r(dubbed, A's lips) / r(dubbed, B's) 0.502 / 0.764
# at 1.0, 0.415 / 0.754 at 1.15, 0.355 / 0.743 at 1.3.
GAP_OVERCLOSE = 1.15
REST_PERCENTILE = 10.0  # nose-chin and face-height rest lengths: the video's most closed frames


def _even(x: float) -> int:
    return int(round(x / 2.0)) * 2


@dataclass(frozen=True)
class ShapeRest:
    """The speaker's rest mouth in this video, from its own frames (the units of ``MOUTH_PARAMS``).

    Attributes:
        nose_chin_eyes: nose tip to chin (1-152) over the eye distance, jaw at rest.
        face_h_eyes: face height (10-152) over the eye distance at rest.
        width: mouth-corner distance (61-291) over face height at rest.
        red: the two vermilion heights (0-13 plus 14-17) over the rest face height.
    """

    nose_chin_eyes: float
    face_h_eyes: float
    width: float
    red: float

    @classmethod
    def from_landmarks(cls, points: np.ndarray) -> ShapeRest:
        """Estimates the rest shape from ``(T, 478, >=2)`` landmarks (NaN rows ignored)."""
        xy = points[~np.isnan(points[:, 0, 0]), :, :2].astype(np.float64)
        if len(xy) == 0:
            raise ValueError("no landmarks to estimate a rest shape from")
        d = _dist(xy)
        eyes = d(*EYE_DISTANCE)
        face_h = d(rig.FOREHEAD, rig.CHIN)
        opening = d(13, 14) / face_h
        closed = opening <= np.percentile(opening, 30.0)
        rest_face_h = float(np.percentile(face_h / eyes, REST_PERCENTILE))
        red = (d(0, 13) + d(14, 17)) / (rest_face_h * eyes)
        return cls(
            nose_chin_eyes=float(np.percentile(d(rig.NOSE_TIP, rig.CHIN) / eyes, REST_PERCENTILE)),
            face_h_eyes=rest_face_h,
            width=float(np.median((d(61, 291) / face_h)[closed])),
            red=float(np.median(red[closed])),
        )

    def own_shape(self, lm: np.ndarray) -> np.ndarray:
        """The frame's own ``(width, jaw, protrude)`` in ``MOUTH_PARAMS`` units."""
        d = _dist(lm[None, :, :2].astype(np.float64))
        eyes = float(d(*EYE_DISTANCE)[0])
        face_h = float(d(rig.FOREHEAD, rig.CHIN)[0])
        rest_h = self.face_h_eyes * eyes
        jaw = (float(d(rig.NOSE_TIP, rig.CHIN)[0]) - self.nose_chin_eyes * eyes) / rest_h
        red = float((d(0, 13) + d(14, 17))[0]) / rest_h
        return np.array([float(d(61, 291)[0]) / face_h - self.width, jaw, red - self.red])


def _dist(xy: np.ndarray) -> Callable[[int, int], np.ndarray]:
    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(xy[:, a] - xy[:, b], axis=-1)

    return dist


@lru_cache(maxsize=16)
def _static_maps(n: int) -> np.ndarray:
    """``(len(MAP_CHANNELS), n * n)`` maps of an n px crop with no head motion and no eyes.

    The dub never moves the head or blinks (the frame does both itself), so only the pixel grid and
    the crop-edge fade matter; they depend on ``n`` alone and are shared by every frame.
    """
    xs, ys = rig.pixel_grid(n)
    edge = np.minimum(np.minimum(xs, n - xs), np.minimum(ys, n - ys))
    border = (lambda x: x * x * (3.0 - 2.0 * x))(
        np.clip((edge - 1.0) / (rig.BORDER_FADE_FRACTION * n), 0.0, 1.0)
    )
    channels = {
        "x": xs,
        "y": ys,
        "head_w": np.zeros((n, n), np.float32),
        "border_w": border,
        "eye_s": np.full((n, n), 1e4, np.float32),  # as eye_maps() says "far outside the eyes"
        "eye_h": np.zeros((n, n), np.float32),
        "eye_m": np.ones((n, n), np.float32),
    }
    maps = np.stack([channels[c] for c in MAP_CHANNELS]).astype(np.float32).reshape(-1, n * n)
    maps.setflags(write=False)
    return maps


@lru_cache(maxsize=16)
def _no_eyes(n: int) -> np.ndarray:
    return np.full((n, n), 1e4, np.float32)


def frame_rig(
    n: int, lm: np.ndarray, mf: rig.MouthFrame, lp: rig.LipProfile, teeth: np.ndarray
) -> np.ndarray:
    """The generator's ``rig`` vector for one frame, as ``avatar/rig.py`` ``build_rig`` fills it.

    ``teeth`` is the video's teeth colour (3,), found once; eye rows are empty (no blink).
    """
    face_h = rig.face_height(lm)
    pivot = lm[rig.CHIN, :2] + rig.PIVOT_BELOW_CHIN * face_h * mf.down
    values = {
        "crop_px": n, "face_h_px": face_h, "alpha_up": rig.ALPHA_UP,
        "mouth_cx": mf.centre[0], "mouth_cy": mf.centre[1],
        "right_x": mf.right[0], "right_y": mf.right[1],
        "half_w_px": mf.half_w, "seam_k1_px": mf.k1, "seam_k2_px": mf.k2,
        "upper_lip_px": lp.upper_lip, "lower_lip_px": lp.lower_lip, "nose_s_px": lp.nose_s,
        "chin_s_px": lp.chin_s, "neck_px": rig.NECK_PER_FACE_H * face_h,
        "jaw_half_w": rig.JAW_HALF_WIDTHS, "width_band_px": rig.WIDTH_BAND_PER_FACE_H * face_h,
        "pivot_x": pivot[0], "pivot_y": pivot[1],
        "teeth_r": teeth[0], "teeth_g": teeth[1], "teeth_b": teeth[2],
    }  # fmt: skip
    values.update(rig.row_bands(values, _no_eyes(n)))
    return np.array([values[name] for name in RIG_FIELDS], np.float32)


@dataclass(frozen=True)
class FaceWindow:
    """Where the generator's crop sits in the frame.

    A ``view_px`` square at ``xy``, rendered at ``crop_px`` (smaller when the face is large, then
    upscaled into the view).
    """

    xy: tuple[int, int]
    view_px: int
    crop_px: int

    @classmethod
    def around(cls, lm: np.ndarray) -> FaceWindow:
        """The window for a face with landmarks ``lm`` (frame px)."""
        face_h = rig.face_height(lm)
        view = max(_even(CROP_PER_FACE_H * face_h), MIN_VIEW_PX)
        centre = (lm[rig.FOREHEAD, :2] + lm[rig.CHIN, :2]) / 2.0
        x0, y0 = (int(round(c - view / 2.0)) for c in centre)
        return cls((x0, y0), view, min(view, MAX_CROP_PX))


def cut_window(frame: np.ndarray, win: FaceWindow) -> np.ndarray:
    """The window's ``(V, V, 3)`` pixels; parts outside the frame repeat its edge."""
    (x0, y0), v = win.xy, win.view_px
    h, w = frame.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + v <= w and y0 + v <= h:
        return frame[y0 : y0 + v, x0 : x0 + v]
    xs = np.clip(np.arange(x0, x0 + v), 0, w - 1)
    ys = np.clip(np.arange(y0, y0 + v), 0, h - 1)
    return frame[ys[:, None], xs[None, :]]


class MouthRetargeter:
    """Re-lips frames of one video; its per-video parts (teeth colour, interior atlas) are fixed.

    Args:
        interior: ``(ATLAS_TEXELS, 3)`` float32, the atlas recoloured to this video
            (``avatar/rig.py`` ``interior_texture``).
        teeth: ``(3,)`` teeth RGB for /f v/ tucks (``interior_colours``).
        rest: the speaker's rest shape.
        threads: onnxruntime intra-op threads of the generator.

    ``render`` is stateless per frame and thread-safe (the ONNX session is shared and read-only).
    """

    def __init__(
        self, interior: np.ndarray, teeth: np.ndarray, rest: ShapeRest, threads: int = 1
    ) -> None:
        self._interior = np.ascontiguousarray(interior, dtype=np.float32)
        self._teeth = np.asarray(teeth, np.float32)
        self._rest = rest
        self._session = generator_session(threads=threads)
        self._spread_gain = spread_gain(self._session)

    @classmethod
    def for_video(
        cls, frame: np.ndarray, lm: np.ndarray, rest: ShapeRest, threads: int = 1
    ) -> MouthRetargeter:
        """Takes teeth and interior colours from one frame (best: the widest open mouth)."""
        win = FaceWindow.around(lm)
        crop, lm_c = _crop(frame, lm, win)
        mf = rig.mouth_frame(lm_c)
        teeth = rig.photo_teeth_rgb(crop, lm_c, mf)
        colours = rig.interior_colours(crop, lm_c, teeth)
        return cls(rig.interior_texture(crop, lm_c, teeth), colours, rest, threads)

    def render(self, frame: np.ndarray, lm: np.ndarray, mouth: np.ndarray) -> np.ndarray:
        """``frame`` (``(H, W, 3)`` uint8 RGB, not changed) with its mouth set to ``mouth``.

        Args:
            frame: the video frame.
            lm: its face's landmarks ``(478, >=2)`` frame px.
            mouth: ``(N_MOUTH_PARAMS,)`` target mouth parameters (``realtime/pose.py``).
        """
        win = FaceWindow.around(lm)
        crop, lm_c = _crop(frame, lm, win)
        n = win.crop_px
        mf = rig.mouth_frame(lm_c)
        lp = rig.lip_profile(lm_c, mf)
        closed = rig.close_mouth(crop, _widen_gap(lm_c, mf), mf, lp)
        pose = np.zeros(10, np.float32)
        pose[:N_MOUTH_PARAMS] = np.nan_to_num(np.asarray(mouth, np.float32)[:N_MOUTH_PARAMS])
        own = self._rest.own_shape(lm)
        pose[1] -= own[0]  # width
        if pose[1] > 0.0:  # the footage's own lips: spread by the measured change, no more
            pose[1] /= self._spread_gain
        pose[2] -= max(own[1], 0.0)  # jaw: only an open jaw is taken back (MIN_JAW is ~0)
        pose[3] -= own[2]  # protrude
        feed = {
            "maps": _static_maps(n),
            "rig": frame_rig(n, lm_c, mf, lp, self._teeth),
            "interior": self._interior,
            "pose": pose,
        }
        out = apply_generator(closed, *self._session.run(None, feed))
        mask = _paste_mask(n, win.view_px, lm_c, mf, lp)
        return _paste(frame, win, out, mask)


def _widen_gap(lm: np.ndarray, mf: rig.MouthFrame) -> np.ndarray:
    """Landmarks whose inner lips lie ``GAP_OVERCLOSE`` times as far from the seam as measured."""
    out = lm.copy()
    for ids in (rig.INNER_UPPER, rig.INNER_LOWER):
        pts = out[list(ids), :2]
        t, v = mf.coords(pts)
        off = (v - mf.seam(t)) * (GAP_OVERCLOSE - 1.0)
        out[list(ids), :2] = pts + off[:, None] * mf.down
    return out


def _crop(frame: np.ndarray, lm: np.ndarray, win: FaceWindow) -> tuple[np.ndarray, np.ndarray]:
    """The window at the generator's size and the landmarks in its pixels."""
    view = cut_window(frame, win)
    n = win.crop_px
    crop = view if n == win.view_px else cv2.resize(view, (n, n), interpolation=cv2.INTER_AREA)
    lm_c = (lm[:, :2].astype(np.float64) - np.array(win.xy)) * (n / win.view_px)
    return np.ascontiguousarray(crop), lm_c


def _paste_mask(
    n: int, view: int, lm: np.ndarray, mf: rig.MouthFrame, lp: rig.LipProfile
) -> np.ndarray:
    """``(view, view)`` float32: 1 over the lips, chin and jaw the generator may move, else 0.

    An ellipse in the mouth's own axes (``lm``, ``mf``, ``lp`` in the n px crop) from the nose base
    to below the chin at full jaw drop, as wide as the jaw field; feathered, so the frame's own eyes
    and cheeks are never resampled. Computed on a grid ``MASK_GRID_STEP`` times coarser and
    upscaled: it is smooth, and the full-size computation cost 3.6 ms a frame.
    """
    face_h = rig.face_height(lm)
    top = lp.nose_s
    bottom = lp.chin_s + rig.NECK_PER_FACE_H * face_h + MAX_JAW * face_h
    m = max(n // MASK_GRID_STEP, 8)
    xs, ys = rig.pixel_grid(m)
    t, v = mf.coords(np.stack([xs, ys], axis=-1) * (n / m))
    half_down = MASK_MARGIN * (bottom - top) / 2.0
    half_across = MASK_MARGIN * rig.JAW_HALF_WIDTHS  # t is in mouth half widths already
    rho = np.sqrt((t / half_across) ** 2 + ((v - (top + bottom) / 2.0) / half_down) ** 2)
    x = np.clip((1.0 - rho) / MASK_FEATHER, 0.0, 1.0)
    coarse = (x * x * (3.0 - 2.0 * x)).astype(np.float32)
    return cv2.resize(coarse, (view, view), interpolation=cv2.INTER_LINEAR)


def _paste(frame: np.ndarray, win: FaceWindow, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``frame`` with ``crop`` blended in by ``mask`` (both upscaled to the view)."""
    (x0, y0), v = win.xy, win.view_px
    if crop.shape[0] != v:
        crop = cv2.resize(crop, (v, v), interpolation=cv2.INTER_LINEAR)
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + v, w), min(y0 + v, h)
    out = frame.copy()
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    rows = np.nonzero(mask.max(axis=1) > 0)[0]  # blend only the rows the mask reaches
    r0, r1 = max(fy0, y0 + int(rows.min(initial=v))), min(fy1, y0 + int(rows.max(initial=0)) + 1)
    if r1 <= r0:
        return out
    sl = (slice(r0 - y0, r1 - y0), slice(fx0 - x0, fx1 - x0))
    weight = np.ascontiguousarray(mask[sl])
    src = np.ascontiguousarray(out[r0:r1, fx0:fx1])
    out[r0:r1, fx0:fx1] = cv2.blendLinear(
        np.ascontiguousarray(crop[sl]), src, weight, np.ascontiguousarray(1.0 - weight)
    )
    return out
