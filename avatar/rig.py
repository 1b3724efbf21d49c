"""Geometry of one face: framing, mouth closing, and the rig the generator reads.

All functions here are pure numpy/cv2 on arrays in pixel units; ``build.py`` strings them together.
Pixel centres sit at ``i + 0.5`` (the convention of the generator's ``grid_sample``), landmarks are
continuous coordinates in the same system.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from lipstream.realtime.avatar import (
    MAP_CHANNELS,
    MAX_HEAD_SHIFT,
    MAX_JAW,
    MAX_OPEN,
    MAX_PROTRUDE,
    RIG_FIELDS,
    TUCK_LIFT,
)

# MediaPipe face-mesh landmark indices.
FOREHEAD, CHIN, NOSE_TIP, NOSE_BASE = 10, 152, 1, 2
CHEEK_RIGHT_IMG, CHEEK_LEFT_IMG = 234, 454  # outermost face points, image left / right
MOUTH_CORNERS = (61, 291)
UPPER_LIP_TOP, UPPER_LIP_IN, LOWER_LIP_IN, LOWER_LIP_BOTTOM = 0, 13, 14, 17
INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
EYES = (  # (corner a, corner b, upper lid a->b, lower lid a->b)
    (
        33,
        133,
        (33, 246, 161, 160, 159, 158, 157, 173, 133),
        (33, 7, 163, 144, 145, 153, 154, 155, 133),
    ),
    (
        362,
        263,
        (362, 398, 384, 385, 386, 387, 388, 466, 263),
        (362, 382, 381, 380, 374, 373, 390, 249, 263),
    ),
)
FACE_OVAL = (
    *(10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377),
    *(152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
)

ALPHA_UP = 0.25  # upper-lip share of the lip gap; the jaw carries the rest
NECK_PER_FACE_H = 0.15
JAW_HALF_WIDTHS = 2.6
WIDTH_BAND_PER_FACE_H = 0.1
PIVOT_BELOW_CHIN = 0.3  # idle roll pivots about the neck, in face heights below the chin
LID_BAND_PER_EYE_H = 0.9  # upper-lid skin that covers the eye in a blink, per eye opening
BORDER_FADE_FRACTION = 0.08  # of the crop side, at each edge, over which every field fades out
MIN_GAP_TO_CLOSE_PX = 1.0
TEETH_PER_CHEEK = (0.70, 0.63, 0.72)
"""Teeth RGB over cheek RGB (sRGB) where the photo shows no teeth of its own. Teeth in a talking
mouth are lit by what gets past the lips: on GRID s1's parted-lip frames the brightest tenth of the
inner-mouth pixels is 0.66 of the cheeks' luma (median of 217 frames, 20 training clips;
``python -m lipstream.models.generator.teeth``). A fixed ivory brighter than the skin, used before,
drew every /f v/ as a white band."""
MIN_TEETH_GAP_PX = 4.0  # photo lip gap below which its teeth are too few pixels to sample
MIN_TEETH_PIXELS = 40
TEETH_BRIGHTEN = 1.05  # the sampled teeth include their own shading; the generator shades again


def face_height(lm: np.ndarray) -> float:
    """Distance between landmarks 10 and 152, the unit of the mouth parameters."""
    return float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))


@dataclass(frozen=True)
class MouthFrame:
    """Mouth (or eye) coordinate frame: origin, unit vectors, half width, seam (mouth only)."""

    centre: np.ndarray  # (2,) px
    right: np.ndarray  # (2,) unit, corner 61 -> corner 291
    down: np.ndarray  # (2,) unit, right rotated +90 degrees (image y down)
    half_w: float
    k1: float
    k2: float

    def coords(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns (T in half widths, v px along down) for points ``(..., 2)``."""
        rel = pts - self.centre
        return rel @ self.right / self.half_w, rel @ self.down

    def seam(self, t: np.ndarray) -> np.ndarray:
        """Seam offset along down (px) at T (clamped to the corners)."""
        tc = np.clip(t, -1.0, 1.0)
        return self.k1 * tc + self.k2 * tc * tc


def mouth_frame(lm: np.ndarray) -> MouthFrame:
    """Fits the seam (the line where closed lips meet) through the inner-lip midline and corners."""
    a, b = lm[MOUTH_CORNERS[0], :2], lm[MOUTH_CORNERS[1], :2]
    right = (b - a) / np.linalg.norm(b - a)
    down = np.array([-right[1], right[0]])
    half_w = float(np.linalg.norm(b - a) / 2.0)
    centre = (lm[UPPER_LIP_IN, :2] + lm[LOWER_LIP_IN, :2]) / 2.0
    mid = (lm[list(INNER_UPPER), :2] + lm[list(INNER_LOWER), :2]) / 2.0
    pts = np.vstack([mid, a, b])
    rel = pts - centre
    t, v = rel @ right / half_w, rel @ down
    design = np.stack([np.ones_like(t), t, t * t], axis=1)
    k0, k1, k2 = np.linalg.lstsq(design, v, rcond=None)[0]
    return MouthFrame(centre + k0 * down, right, down, half_w, float(k1), float(k2))


def lip_gaps(lm: np.ndarray, mf: MouthFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo's own lip opening: (T, upper lip above the seam px, lower lip below it px)."""
    tu, vu = _sorted_by_t(*mf.coords(lm[list(INNER_UPPER), :2]))
    tl, vl = _sorted_by_t(*mf.coords(lm[list(INNER_LOWER), :2]))
    t = np.linspace(-1.0, 1.0, 81)
    up = np.clip(mf.seam(t) - np.interp(t, tu, vu, left=np.nan, right=np.nan), 0.0, None)
    lo = np.clip(np.interp(t, tl, vl, left=np.nan, right=np.nan) - mf.seam(t), 0.0, None)
    return t, np.nan_to_num(up), np.nan_to_num(lo)


def _sorted_by_t(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(t)
    return t[order], v[order]


@dataclass(frozen=True)
class LipProfile:
    """Vertical landmarks of the lower face relative to the seam at the mouth centre, px."""

    upper_lip: float
    lower_lip: float
    nose_s: float
    chin_s: float


def lip_profile(lm: np.ndarray, mf: MouthFrame) -> LipProfile:
    """Lip thicknesses and the nose/chin positions, measured along the mouth's down axis."""
    _, v = mf.coords(
        lm[[UPPER_LIP_TOP, UPPER_LIP_IN, LOWER_LIP_IN, LOWER_LIP_BOTTOM, NOSE_BASE, CHIN], :2]
    )
    return LipProfile(
        upper_lip=float(max(v[1] - v[0], 2.0)),
        lower_lip=float(max(v[3] - v[2], 2.0)),
        nose_s=float(min(v[4], v[0] - 2.0)),
        chin_s=float(max(v[5], v[3] + 2.0)),
    )


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(n, n)`` float32 x and y of an n x n crop."""
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    return xs, ys


def seam_gaps(
    n: int, mf: MouthFrame, gaps: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel of an n x n crop against the lip seam: ``xs, ys, s, gap_up, gap_lo``.

    ``s`` is px below the seam; ``gap_up``/``gap_lo`` are the photo's lip gaps (from ``lip_gaps``)
    above and below the seam at that pixel's position along the mouth, 0 beyond the corners.
    """
    t_s, up, lo = gaps
    xs, ys = pixel_grid(n)
    t, v = mf.coords(np.stack([xs, ys], axis=-1))
    s = v - mf.seam(t)
    gap_up = np.interp(t, t_s, up, left=0.0, right=0.0)
    gap_lo = np.interp(t, t_s, lo, left=0.0, right=0.0)
    return xs, ys, s, gap_up, gap_lo


def close_mouth(crop: np.ndarray, lm: np.ndarray, mf: MouthFrame, lp: LipProfile) -> np.ndarray:
    """Warps the photo's open lips shut along the seam (its teeth and cavity disappear).

    The field is discontinuous at the seam: pixels above it sample from higher up (the upper lip
    comes down rigidly, the skin up to the nose stretches), pixels below from lower down, so what
    lay between the lips is skipped, not squeezed. Returns the new ``crop`` (uint8, same shape).
    """
    gaps = lip_gaps(lm, mf)
    if gaps[1].max() + gaps[2].max() < MIN_GAP_TO_CLOSE_PX:
        return crop
    xs, ys, s, gap_up, gap_lo = seam_gaps(crop.shape[0], mf, gaps)
    w_up = np.clip((s - lp.nose_s) / (-lp.upper_lip - lp.nose_s), 0.0, 1.0)
    w_lo = np.clip((lp.chin_s - s) / (lp.chin_s - lp.lower_lip), 0.0, 1.0)
    shift = np.where(s < 0.0, -gap_up * w_up, gap_lo * w_lo)
    map_x = (xs + shift * mf.down[0] - 0.5).astype(np.float32)
    map_y = (ys + shift * mf.down[1] - 0.5).astype(np.float32)
    return cv2.remap(crop, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def eye_maps(lm: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel eye rig ``(n, n)`` float32 each: px below the upper lid, eye opening, lid band."""
    xs, ys = pixel_grid(n)
    pts = np.stack([xs, ys], axis=-1)
    eye_s = np.full((n, n), 1e4, np.float32)
    eye_h = np.zeros((n, n), np.float32)
    eye_m = np.ones((n, n), np.float32)
    for a_idx, b_idx, upper, lower in EYES:
        a, b = lm[a_idx, :2], lm[b_idx, :2]
        if b[0] < a[0]:
            a, b = b, a
        half = float(np.linalg.norm(b - a) / 2.0)
        right = (b - a) / (2.0 * half)
        frame = MouthFrame((a + b) / 2.0, right, np.array([-right[1], right[0]]), half, 0.0, 0.0)
        tu, vu = _sorted_by_t(*frame.coords(lm[list(upper), :2]))
        tl, vl = _sorted_by_t(*frame.coords(lm[list(lower), :2]))
        t, v = frame.coords(pts)
        v_up, v_lo = np.interp(t, tu, vu), np.interp(t, tl, vl)
        h = np.where(np.abs(t) < 1.0, np.clip(v_lo - v_up, 0.0, None), 0.0)
        band = LID_BAND_PER_EYE_H * float(h.max())
        sel = (np.abs(t) < 1.0) & (v - v_up > -band - 2.0) & (v - v_up < h + 2.0)
        eye_s[sel] = (v - v_up)[sel]
        eye_h[sel] = h[sel]
        eye_m[sel] = band
    return eye_s, eye_h, eye_m


def weight_maps(lm: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Head-motion weight (1 over the head, fading outside the face oval) and the crop-edge fade."""
    xs, ys = pixel_grid(n)
    oval = lm[list(FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    semi = np.abs(oval - centre).max(axis=0) * 1.1
    rho = np.sqrt(((xs - centre[0]) / semi[0]) ** 2 + ((ys - centre[1]) / semi[1]) ** 2)
    edge = np.minimum(np.minimum(xs, n - xs), np.minimum(ys, n - ys))
    border_w = _smooth((edge - 1.0) / (BORDER_FADE_FRACTION * n))
    head_w = _smooth((1.6 - rho) / 0.6) * border_w
    return head_w.astype(np.float32), border_w.astype(np.float32)


def view_alpha(lm: np.ndarray, n: int) -> np.ndarray:
    """``(n, n)`` float32 blend weight of the upscaled render over the sharp frame in a face view.

    1 over the whole head and jaw (everything that moves, including the chin at full jaw drop, so a
    moving part never ghosts over its sharp still copy), fading to 0 before the view's edge.
    """
    xs, ys = pixel_grid(n)
    oval = lm[list(FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    semi = np.abs(oval - centre).max(axis=0) * 1.1
    rho = np.sqrt(((xs - centre[0]) / semi[0]) ** 2 + ((ys - centre[1]) / semi[1]) ** 2)
    edge = np.minimum(np.minimum(xs, n - xs), np.minimum(ys, n - ys))
    return (
        _smooth((1.9 - rho) / 0.4) * _smooth((edge - 1.0) / (0.5 * BORDER_FADE_FRACTION * n))
    ).astype(np.float32)


def row_bands(values: dict[str, float], eye_s: np.ndarray) -> dict[str, float]:
    """Crop rows the mouth, eye and interior computations must cover, for any allowed pose."""
    n, h, alpha = values["crop_px"], values["face_h_px"], values["alpha_up"]
    cy, half_w, tilt = values["mouth_cy"], values["half_w_px"], abs(values["right_y"])
    margin = MAX_HEAD_SHIFT * h + 2.0
    max_gap = MAX_OPEN * h * (1.0 + MAX_JAW)
    max_up = alpha * max_gap + TUCK_LIFT * h + MAX_PROTRUDE * h
    slop = tilt * values["jaw_half_w"] * half_w * 1.2
    top = min(values["nose_s_px"], -1.5 * values["width_band_px"])
    bottom = values["chin_s_px"] + max(MAX_JAW * h, (1.0 - alpha) * max_gap) + values["neck_px"]
    seam = abs(values["seam_k1_px"]) + abs(values["seam_k2_px"]) + tilt * half_w * 1.2
    rows_with_eyes = np.nonzero((eye_s < 1e3).any(axis=1))[0]
    eye0, eye1 = (rows_with_eyes.min(), rows_with_eyes.max() + 1) if rows_with_eyes.size else (0, 0)

    def clip(v: float) -> float:
        return float(min(max(np.floor(v) if v < cy else np.ceil(v), 0), n))

    mouth = (clip(cy + top - slop - margin), clip(cy + bottom + slop + margin))
    teeth = (
        clip(cy - max_up - seam - margin),
        clip(cy + (1 - alpha) * max_gap + seam + margin),
    )
    return {
        "mouth_row0": mouth[0], "mouth_row1": mouth[1],
        "teeth_row0": max(teeth[0], mouth[0]), "teeth_row1": min(teeth[1], mouth[1]),
        "eye_row0": float(max(eye0 - margin, 0)), "eye_row1": float(min(eye1 + margin, n)),
    }  # fmt: skip


def photo_teeth_rgb(crop: np.ndarray, lm: np.ndarray, mf: MouthFrame) -> np.ndarray | None:
    """Median RGB of the teeth the photo itself shows between its lips, or None if it shows none.

    Teeth are the bright, unsaturated pixels of the lip gap; reusing their colour keeps the
    synthetic teeth in the photo's white balance.
    """
    gaps = lip_gaps(lm, mf)
    if gaps[1].max() + gaps[2].max() < MIN_TEETH_GAP_PX:
        return None
    _, _, s, gap_up, gap_lo = seam_gaps(crop.shape[0], mf, gaps)
    inside = (s > -gap_up + 1.0) & (s < gap_lo - 1.0)
    pix = crop[inside].astype(np.float32)
    if len(pix) < MIN_TEETH_PIXELS:
        return None
    luma = pix @ np.array([0.299, 0.587, 0.114], np.float32)
    sat = pix.max(axis=1) - pix.min(axis=1)
    teeth = pix[(luma > np.percentile(luma, 60)) & (sat < 0.35 * np.maximum(luma, 1.0))]
    return np.median(teeth, axis=0) if len(teeth) >= MIN_TEETH_PIXELS // 2 else None


def interior_colours(
    crop: np.ndarray, lm: np.ndarray, teeth: np.ndarray | None = None
) -> np.ndarray:
    """Teeth RGB (3,) for the /f v/ tuck.

    The photo's own ``teeth`` where it shows some, else its cheeks' colour times
    ``TEETH_PER_CHEEK``, so that they take the photo's exposure and white balance.
    """
    if teeth is not None:
        return np.clip(np.asarray(teeth, np.float32) * TEETH_BRIGHTEN, 0.0, 255.0)
    skin = cheek_pixels(crop, lm)
    cheek = np.median(skin, axis=0) if len(skin) else np.full(3, 150.0, np.float32)
    return np.clip(cheek * np.array(TEETH_PER_CHEEK, np.float32), 0.0, 255.0).astype(np.float32)


def cheek_pixels(image: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """``(K, 3)`` float32 RGB of 7x7 patches on both cheeks (landmarks 50, 280, 117, 346)."""
    cheeks = lm[[50, 280, 117, 346], :2].astype(int)
    h, w = image.shape[:2]
    patches = [
        image[max(y - 3, 0) : min(y + 4, h), max(x - 3, 0) : min(x + 4, w)].reshape(-1, 3)
        for x, y in cheeks
    ]
    return np.concatenate(patches).astype(np.float32)


ATLAS_PATH = Path(__file__).resolve().parents[1] / "models" / "generator" / "interior_atlas.npz"
ATLAS_TEETH_GAIN = (0.7, 1.4)  # per-channel range of the pull towards the photo's own teeth


@lru_cache(maxsize=1)
def _atlas() -> np.ndarray:
    with np.load(ATLAS_PATH) as data:
        return data["atlas"].astype(np.float32)


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    x = np.clip(lin, 0.0, 1.0)
    return 255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def interior_texture(crop: np.ndarray, lm: np.ndarray, teeth: np.ndarray | None) -> np.ndarray:
    """The mouth-interior atlas recoloured to this photo: ``(ATLAS_TEXELS, 3)`` float32 sRGB.

    The atlas holds GRID s1's interiors in linear RGB relative to the cheeks that lit them; times
    this photo's cheek colour it takes the photo's exposure and white balance. Where the photo shows
    its own teeth, the atlas's teeth (its brightest texels) are pulled to their colour.
    """
    atlas = _atlas()
    skin = np.median(_to_linear(cheek_pixels(crop, lm)), axis=0)
    lin = atlas * skin
    if teeth is not None:
        luma = lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        bright = lin[luma >= np.percentile(luma, 95)].reshape(-1, 3).mean(0)
        gain = np.clip(_to_linear(teeth) / np.maximum(bright, 1e-4), *ATLAS_TEETH_GAIN)
        weight = np.clip(luma / max(float(np.percentile(luma, 95)), 1e-4), 0.0, 1.0)[..., None]
        lin = lin * (1.0 + weight * (gain - 1.0))
    return np.ascontiguousarray(_to_srgb(lin).reshape(-1, 3), dtype=np.float32)


def build_rig(
    crop: np.ndarray,
    lm: np.ndarray,
    mf: MouthFrame,
    lp: LipProfile,
    teeth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The generator's per-avatar inputs: rig ``(len(RIG_FIELDS),)`` and maps ``(C, n, n)``."""
    n = crop.shape[0]
    face_h = face_height(lm)
    pivot = lm[CHIN, :2] + PIVOT_BELOW_CHIN * face_h * mf.down
    values = {
        "crop_px": n, "face_h_px": face_h, "alpha_up": ALPHA_UP,
        "mouth_cx": mf.centre[0], "mouth_cy": mf.centre[1],
        "right_x": mf.right[0], "right_y": mf.right[1],
        "half_w_px": mf.half_w, "seam_k1_px": mf.k1, "seam_k2_px": mf.k2,
        "upper_lip_px": lp.upper_lip, "lower_lip_px": lp.lower_lip, "nose_s_px": lp.nose_s,
        "chin_s_px": lp.chin_s, "neck_px": NECK_PER_FACE_H * face_h, "jaw_half_w": JAW_HALF_WIDTHS,
        "width_band_px": WIDTH_BAND_PER_FACE_H * face_h, "pivot_x": pivot[0], "pivot_y": pivot[1],
    }  # fmt: skip
    colours = interior_colours(crop, lm, teeth)
    for j, ch in enumerate("rgb"):
        values[f"teeth_{ch}"] = colours[j]
    xs, ys = pixel_grid(n)
    head_w, border_w = weight_maps(lm, n)
    eye_s, eye_h, eye_m = eye_maps(lm, n)
    values.update(row_bands(values, eye_s))
    channels = {
        "x": xs,
        "y": ys,
        "head_w": head_w,
        "border_w": border_w,
        "eye_s": eye_s,
        "eye_h": eye_h,
        "eye_m": eye_m,
    }
    maps = np.stack([channels[name] for name in MAP_CHANNELS]).astype(np.float32)
    rig = np.array([values[name] for name in RIG_FIELDS], np.float32)
    return rig, maps
