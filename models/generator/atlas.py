"""Cuts the mouth-interior atlas from GRID s1: what is between the lips, by opening and width.

    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.generator.atlas

For every training clip's frames with parted lips (MediaPipe landmarks from
``models/motion/landmarks.py``), the region between the inner lip contours is resampled onto a
fixed grid: columns run corner to corner (T, in half mouth widths from the centre, along the
61-291 axis), rows from the upper inner lip (F = 0) to the lower (F = 1). Each frame goes into the
(opening, width) cell nearest its own and the cells are averaged, in linear RGB divided by the
frame's cheek colour, so the atlas holds the interior *relative to the skin that lit it*; the
builder multiplies it back by the target photo's colours (``avatar/rig.py``).

Writes ``models/generator/interior_atlas.npz``: ``atlas`` (N_OPEN, N_WIDTH, ROWS, COLS, 3) float16,
``open_centres``, ``width_centres``, ``counts``. Derived from GRID (CC BY 4.0), cited in CARD.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from lipstream.avatar.rig import cheek_pixels

logger = logging.getLogger(__name__)

ATLAS_PATH = Path(__file__).resolve().parent / "interior_atlas.npz"
OPEN_CENTRES = (0.02, 0.045, 0.07, 0.095)  # inner-lip gap, face heights
WIDTH_CENTRES = (-0.025, 0.0, 0.025)  # corner distance minus rest, face heights
ROWS, COLS = 12, 40
T_SPAN = 0.95  # columns cover T in [-T_SPAN, T_SPAN]; the last bit to each corner is lip
INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
PRIOR_FRAMES = 100  # a cell with fewer frames than this leans on its neighbour (``shrink``)
EVERY_CLIP = 3  # every 3rd training clip is plenty: a cell averages hundreds of frames


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear RGB 0..1 -> sRGB 0..255 float32."""
    x = np.clip(lin, 0.0, 1.0)
    return (255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)).astype(
        np.float32
    )


def skin_linear(image: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Median linear RGB ``(3,)`` of the cheek patches (``avatar.rig.cheek_pixels``)."""
    return np.median(_to_linear(cheek_pixels(image, lm)), axis=0)


def sample_interior(image: np.ndarray, lm: np.ndarray) -> np.ndarray | None:
    """``(ROWS, COLS, 3)`` linear RGB between the inner lips of one frame, or None."""
    a, b = lm[61, :2], lm[291, :2]
    half = float(np.linalg.norm(b - a) / 2.0)
    if half < 4.0:
        return None
    right = (b - a) / (2.0 * half)
    down = np.array([-right[1], right[0]])
    centre = (a + b) / 2.0

    def coords(ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        rel = lm[list(ids), :2] - centre
        t, v = rel @ right / half, rel @ down
        order = np.argsort(t)
        return t[order], v[order]

    tu, vu = coords(INNER_UPPER)
    tl, vl = coords(INNER_LOWER)
    t = np.linspace(-T_SPAN, T_SPAN, COLS) * min(tu.max(), -tu.min(), tl.max(), -tl.min())
    f = (np.arange(ROWS) + 0.5) / ROWS
    top, bottom = np.interp(t, tu, vu), np.interp(t, tl, vl)
    v = top[None, :] + f[:, None] * (bottom - top)[None, :]
    pts = centre + t[None, :, None] * half * right + v[..., None] * down
    lin = _to_linear(image)
    out = cv2.remap(lin, pts[..., 0].astype(np.float32) - 0.5, pts[..., 1].astype(np.float32) - 0.5,
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out


def shrink(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cell means, each pulled towards a better-filled neighbour by ``PRIOR_FRAMES`` of its frames.

    The neutral-width cells lean on the next smaller opening (the widest openings are rare: a few
    dozen frames), the rounded and spread cells on the neutral cell of their opening, so a sparse
    cell is a mix rather than a handful of frames.
    """
    mean = sums / np.maximum(counts, 1)[..., None, None, None]
    out = np.zeros_like(mean)
    neutral = len(WIDTH_CENTRES) // 2
    for ko in range(len(OPEN_CENTRES)):
        prior = out[ko - 1, neutral] if ko else mean[ko, neutral]
        n = counts[ko, neutral]
        out[ko, neutral] = (mean[ko, neutral] * n + prior * PRIOR_FRAMES) / (n + PRIOR_FRAMES)
        for kw in range(len(WIDTH_CENTRES)):
            if kw != neutral:
                n = counts[ko, kw]
                out[ko, kw] = (mean[ko, kw] * n + out[ko, neutral] * PRIOR_FRAMES) / (
                    n + PRIOR_FRAMES
                )
    return out


def main() -> None:
    """Builds the atlas from the cached landmarks and the GRID s1 videos."""
    from lipstream.models.motion.dataset import clip_ids, load_clip, split_ids
    from lipstream.models.motion.landmarks import GRID_DIR, LANDMARK_DIR, decode_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ATLAS_PATH)
    parser.add_argument("--limit", type=int, default=0, help="clips to use (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_ids, _ = split_ids(clip_ids())
    sums = np.zeros((len(OPEN_CENTRES), len(WIDTH_CENTRES), ROWS, COLS, 3), np.float64)
    counts = np.zeros((len(OPEN_CENTRES), len(WIDTH_CENTRES)), np.int64)
    oc, wc = np.array(OPEN_CENTRES), np.array(WIDTH_CENTRES)
    picked = train_ids[::EVERY_CLIP][: args.limit or None]
    for i, clip_id in enumerate(picked):
        clip = load_clip(clip_id)
        with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
            points = data["points"]
        frames = decode_clip(GRID_DIR / "s1" / f"{clip_id}.mp4").frames
        for n in np.nonzero(clip.valid & (clip.targets[:, 0] > 0.5 * OPEN_CENTRES[0]))[0]:
            if n >= len(frames):
                break
            cut = sample_interior(frames[n], points[n])
            if cut is None:
                continue
            skin = skin_linear(frames[n], points[n])
            ko = int(np.argmin(np.abs(oc - clip.targets[n, 0])))
            kw = int(np.argmin(np.abs(wc - clip.targets[n, 1])))
            sums[ko, kw] += cut / np.maximum(skin, 1e-3)
            counts[ko, kw] += 1
        if i % 20 == 0:
            logger.info("atlas: %d clips, cells %s", i + 1, counts.tolist())
    atlas = shrink(sums, counts)
    np.savez_compressed(
        args.out,
        atlas=atlas.astype(np.float16),
        open_centres=oc.astype(np.float32),
        width_centres=wc.astype(np.float32),
        counts=counts,
    )
    logger.info("wrote %s, frames per cell %s", args.out, counts.tolist())


if __name__ == "__main__":
    main()
