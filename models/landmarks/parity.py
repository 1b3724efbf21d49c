"""Prints how far avatar/detect.py (ONNX) is from mediapipe 0.10.21 itself, per image.

    python models/landmarks/parity.py [IMAGE ...]   # default: ../shared/photos/*, GRID s1 frames

Uses the reference code of ``tests/test_detect_parity.py`` (needs the dev or train extras). Error in
% of face height (landmarks 10-152): boxes (worst corner), the 478 points (x, y distance; z).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import test_detect_parity as ref  # noqa: E402  (needs the path above)
from lipstream.avatar import detect  # noqa: E402


def main() -> None:
    """One line per image."""
    if len(sys.argv) > 1:
        cases = [(Path(p).name, Path(p)) for p in sys.argv[1:]]
    else:
        cases = ref._cases()
    for name, source in cases:
        rgb = ref._image(source)
        want = ref._reference_boxes(rgb)
        got = detect.detect_faces(rgb)
        if not want:
            print(f"{name}: mediapipe finds no face; ours finds {len(got)}")
            continue
        lm_ref = ref._reference_landmarks(rgb, want[0])
        face_h = float(np.linalg.norm(lm_ref[ref.FOREHEAD, :2] - lm_ref[ref.CHIN, :2]))
        box_err = (
            max(
                np.abs(
                    np.array([g.x, g.y, g.x + g.width, g.y + g.height])
                    - np.array([w.x, w.y, w.x + w.width, w.y + w.height])
                ).max()
                for g, w in zip(got, want, strict=True)
            )
            if len(got) == len(want)
            else float("nan")
        )
        lm = detect.fit_landmarks(rgb, want[0])
        xy = np.linalg.norm(lm[:, :2] - lm_ref[:, :2], axis=1) / face_h
        z = np.abs(lm[:, 2] - lm_ref[:, 2]) / face_h
        print(
            f"{name}: faces {len(got)}/{len(want)} box {100 * box_err / face_h:.4f} % "
            f"points max {100 * xy.max():.4f} % mean {100 * xy.mean():.4f} % "
            f"(irises max {100 * xy[468:].max():.4f} %) z max {100 * z.max():.4f} % "
            f"[face {face_h:.0f} px]"
        )


if __name__ == "__main__":
    main()
