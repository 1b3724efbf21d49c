"""Mouth-crop SSIM with the crop placed by the real frame's landmarks only.

Issue 11's SSIM places each crop by its own frame's landmarks (61-291), so a renderer change that
moves where the face mesh puts the rendered corners moves the crop too, and the figure then depends
on the mesh (plain or refined lips disagree by up to 0.04, ``models/generator/CARD.md``). Here both
crops come from the real frame's box: the refined landmarks of the motion model's cache, mapped
into the render by a similarity fitted between the first real and first rendered frame (all 468
points; the avatar is built from that frame, so they are the same face at rest). Frames and the
"open" threshold are as in the issue (real opening over half its 90th percentile); the still
photo is the first real frame at the same boxes.

Reads the renders ``shape_eval.py --keep DIR`` left (``DIR/<clip>.out.mp4``)::

    OMP_NUM_THREADS=1 python bench/mouth_ssim_fixed.py CLIPS.txt DIR [DIR ...]

``CLIPS.txt``: the GRID s1 clip paths, whitespace-separated. Prints the still photo's SSIM, then
one line per DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from lipstream.models.motion.dataset import GRID_DIR
from lipstream.models.motion.landmarks import LANDMARK_DIR, MeshTracker, decode_clip

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_shape import mouth_crop, ssim  # noqa: E402


def read_video(path: Path) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames of a video file."""
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return np.stack(frames)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def open_boxes(points: np.ndarray) -> dict[int, tuple[np.ndarray, float]]:
    """Crop centre and half width of every open-mouth frame (not the first), by the real mesh."""
    eye = np.linalg.norm(points[:, 33, :2] - points[:, 263, :2], axis=1)
    opening = np.linalg.norm(points[:, 13, :2] - points[:, 14, :2], axis=1) / eye
    threshold = 0.5 * np.nanpercentile(opening, 90)
    corners = points[:, [61, 291], :2]
    return {
        i: (corners[i].mean(0), 0.8 * float(np.linalg.norm(corners[i, 0] - corners[i, 1])))
        for i in range(1, len(points))
        if opening[i] > threshold
    }


def clip_scores(clip_id: str, dirs: list[Path], tracker: MeshTracker) -> tuple[float, list[float]]:
    """The still photo's SSIM and each render's, on one clip."""
    with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
        points = data["points"]
    real = decode_clip(GRID_DIR / "s1" / f"{clip_id}.mp4").frames
    boxes = open_boxes(points[: min(len(real), len(points))])
    still = [
        ssim(mouth_crop(real[0], c, h), mouth_crop(real[i], c, h)) for i, (c, h) in boxes.items()
    ]
    scores = []
    for folder in dirs:
        gen = read_video(folder / f"{clip_id}.out.mp4")
        first = tracker(gen[:1])[0, :468, :2].astype(np.float32)
        m, _ = cv2.estimateAffinePartial2D(points[0, :468, :2].astype(np.float32), first)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        valid = []
        for i, (centre, half) in boxes.items():
            a = mouth_crop(real[i], centre, half)
            b = mouth_crop(gen[min(i, len(gen) - 1)], m[:, :2] @ centre + m[:, 2], half * scale)
            if a is not None and b is not None:
                valid.append(ssim(a, b))
        scores.append(float(np.mean(valid)))
    return float(np.mean(still)), scores


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    clips = [Path(p).stem for p in Path(sys.argv[1]).read_text().split()]
    dirs = [Path(d) for d in sys.argv[2:]]
    tracker = MeshTracker(static_image_mode=True)
    try:
        results = [clip_scores(c, dirs, tracker) for c in clips]
    finally:
        tracker.close()
    print(f"clips={len(clips)} still_photo={np.mean([r[0] for r in results]):.4f}")
    for j, folder in enumerate(dirs):
        print(f"{folder}: {np.mean([r[1][j] for r in results]):.4f}")


if __name__ == "__main__":
    main()
