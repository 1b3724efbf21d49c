"""How bright teeth are in a talking mouth, against the cheeks: the constant ``TEETH_PER_CHEEK``.

On GRID s1 training clips (every 40th, 20 clips; CC BY 4.0, Cooke et al. 2006), every second frame
whose inner-lip opening (13-14) is at least 0.08 eye distances: the brightest tenth of the pixels
inside the inner-lip contour (the teeth, where they show) against the median of 7x7 patches on both
cheeks. Prints the luma ratio and the per-channel ratio of the medians, which is the constant.

    OMP_NUM_THREADS=1 python -m lipstream.models.generator.teeth   # ~1 min, landmark cache needed
"""

from __future__ import annotations

import cv2
import numpy as np
from lipstream.avatar.rig import cheek_pixels
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, split_ids
from lipstream.models.motion.landmarks import LANDMARK_DIR, decode_clip

INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178,
              88, 95)  # fmt: skip
MIN_OPEN = 0.08  # inner-lip opening over eye distance: the mouth is open enough to show teeth
LUMA = np.array([0.299, 0.587, 0.114])


def frame_colours(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean RGB of the brightest tenth inside the inner lips and the cheeks' median RGB."""
    eye = np.linalg.norm(points[33, :2] - points[263, :2])
    if np.isnan(eye) or np.linalg.norm(points[13, :2] - points[14, :2]) / eye < MIN_OPEN:
        return None
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [points[list(INNER_LIPS), :2].astype(np.int32)], 1)
    pixels = frame[mask > 0].astype(np.float32)
    if len(pixels) < 30:
        return None
    luma = pixels @ LUMA
    teeth = pixels[luma >= np.percentile(luma, 90)].mean(0)
    return teeth, np.median(cheek_pixels(frame, points), 0)


def main() -> None:
    """Measures and prints the ratios."""
    train, _ = split_ids(clip_ids())
    pairs = []
    for clip_id in train[::40][:20]:
        with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
            points = data["points"]
        frames = decode_clip(GRID_DIR / "s1" / f"{clip_id}.mp4").frames
        for i in range(0, min(len(frames), len(points)), 2):
            found = frame_colours(frames[i], points[i])
            if found is not None:
                pairs.append(found)
    teeth, cheek = (np.array(x) for x in zip(*pairs, strict=True))
    luma = (teeth @ LUMA) / (cheek @ LUMA)
    print(f"{len(pairs)} frames; teeth / cheek luma: median {np.median(luma):.2f} "
          f"(quartiles {np.percentile(luma, 25):.2f}-{np.percentile(luma, 75):.2f})")  # fmt: skip
    ratio = np.median(teeth, 0) / np.median(cheek, 0)
    print("per channel (TEETH_PER_CHEEK):", tuple(round(float(r), 2) for r in ratio))


if __name__ == "__main__":
    main()
