"""avatar/detect.py without mediapipe: the runtime pipeline on its own (no reference needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lipstream.avatar import detect
from lipstream.avatar.errors import NoFaceError


def test_anchor_layouts_match_the_models() -> None:
    """896 anchors for the short-range model, 2304 for the full-range one; centres inside [0, 1]."""
    for det in (detect.SHORT_RANGE, detect.FULL_RANGE):
        anchors = detect._anchors(det)
        out = detect._session(det.model).get_outputs()[0].shape
        assert anchors.shape == (out[1], 2)
        assert anchors.min() > 0 and anchors.max() < 1
    short = detect._anchors(detect.SHORT_RANGE)
    # the first 16x16 grid has two anchors per cell, at the same centre
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])


def test_weighted_nms_merges_overlaps_by_score_and_keeps_the_rest() -> None:
    values = np.zeros((3, 16))
    values[0, :4] = [0, 0, 10, 10]
    values[1, :4] = [1, 0, 11, 10]  # IoU 0.82 with the first
    values[2, :4] = [50, 50, 60, 60]  # apart
    score = np.array([0.9, 0.6, 0.7])
    out = detect._weighted_nms(values, score)
    assert len(out) == 2
    np.testing.assert_allclose(out[0][:4], [0.4, 0, 10.4, 10])  # (0.9 * 0 + 0.6 * 1) / 1.5
    assert out[0][16] == pytest.approx(0.9)
    np.testing.assert_allclose(out[1][:4], [50, 50, 60, 60])


def test_blank_image_has_no_face_and_no_mesh() -> None:
    grey = np.full((300, 400, 3), 128, np.uint8)
    assert detect.detect_faces(grey) == []
    with pytest.raises(NoFaceError):
        detect.fit_landmarks(grey, detect.FaceBox(100, 50, 120, 120, 1.0))


def test_face_is_found_and_its_mesh_lies_in_its_box(photos: Path) -> None:
    rgb = detect.decode_photo((photos / "astronaut.png").read_bytes())
    boxes = detect.detect_faces(rgb)
    assert len(boxes) == 1 and boxes[0].score > 0.8
    box = boxes[0]
    lm = detect.fit_landmarks(rgb, box)
    assert lm.shape == (detect.N_LANDMARKS, 3)
    nose = lm[1, :2]
    assert box.x < nose[0] < box.x + box.width and box.y < nose[1] < box.y + box.height
    # the irises sit between their eye corners
    for iris, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted((lm[a, 0], lm[b, 0]))
        assert lo < lm[iris, 0] < hi


def test_the_runtime_imports_neither_mediapipe_nor_jax() -> None:
    code = (
        "import sys, numpy as np\n"
        "from lipstream.avatar import detect\n"
        "detect.detect_faces(np.zeros((64, 64, 3), np.uint8))\n"
        "print(sorted(m for m in ('mediapipe', 'jax', 'tensorflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
