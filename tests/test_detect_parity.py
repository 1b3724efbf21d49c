"""The ONNX face pipeline (avatar/detect.py) against mediapipe 0.10.21 itself, within 1 %.

mediapipe is in the ``dev`` and ``train`` extras only (CI installs ``dev``); the runtime no longer
needs it. The reference below is the code detect.py replaced: mediapipe's FaceDetection for the
boxes, its FaceMesh (static image, refined) on the same square crop for the 478 points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lipstream.avatar import detect

mp = pytest.importorskip("mediapipe", reason="mediapipe (the dev/train extras) is not installed")

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "photos"
GRID_S1 = SHARED / "data" / "grid" / "s1"
GRID_FRAMES = (("bbaf4p.mp4", 0), ("bbaf4p.mp4", 40), ("bbal6n.mp4", 20), ("bbal8p.mp4", 60))
BOUND = 0.01  # of face height
FOREHEAD, CHIN = 10, 152

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is missing")


def _reference_boxes(rgb: np.ndarray) -> list[detect.FaceBox]:
    h, w = rgb.shape[:2]
    boxes: list[detect.FaceBox] = []
    for model_selection in (1, 0):
        with mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=0.5
        ) as detector:
            result = detector.process(rgb)
        for det in result.detections or []:
            bb = det.location_data.relative_bounding_box
            boxes.append(
                detect.FaceBox(
                    bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h, float(det.score[0])
                )
            )
        if boxes:
            break
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def _reference_landmarks(rgb: np.ndarray, box: detect.FaceBox) -> np.ndarray:
    side = max(box.width, box.height) * detect.MESH_CROP_SCALE
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    scale = detect.MESH_CROP_PX / side
    crop_px = detect.MESH_CROP_PX
    mat = np.array([[scale, 0, crop_px / 2 - scale * cx], [0, scale, crop_px / 2 - scale * cy]])
    crop = detect.cv2.warpAffine(
        rgb,
        mat,
        (crop_px, crop_px),
        flags=detect.cv2.INTER_AREA,
        borderMode=detect.cv2.BORDER_REPLICATE,
    )
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
    ) as mesh:
        result = mesh.process(crop)
    assert result.multi_face_landmarks, "mediapipe found no face in the crop"
    pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark])
    out = np.empty_like(pts)
    out[:, 0] = (pts[:, 0] * crop_px - mat[0, 2]) / scale
    out[:, 1] = (pts[:, 1] * crop_px - mat[1, 2]) / scale
    out[:, 2] = pts[:, 2] * crop_px / scale
    return out


def _grid_frame(name: str, index: int) -> np.ndarray:
    import av

    with av.open(str(GRID_S1 / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{name} has no frame {index}")


def _cases() -> list[tuple[str, object]]:
    cases: list[tuple[str, object]] = [(p.name, p) for p in sorted(PHOTOS.glob("*.*g"))]
    # a tilted head: the mesh's region is rotated so the eyes are level
    cases += [(f"obama.jpg@{deg}deg", (PHOTOS / "obama.jpg", deg)) for deg in (-25, 15)]
    cases += [(f"{n}#{i}", (n, i)) for n, i in GRID_FRAMES]
    return cases


def _image(source: object) -> np.ndarray:
    if isinstance(source, Path):
        return detect.decode_photo(source.read_bytes())
    first, second = source  # type: ignore[misc]
    if isinstance(first, Path):
        rgb = detect.decode_photo(first.read_bytes())
        h, w = rgb.shape[:2]
        mat = detect.cv2.getRotationMatrix2D((w / 2, h / 2), second, 1.0)
        return detect.cv2.warpAffine(rgb, mat, (w, h), borderMode=detect.cv2.BORDER_REFLECT)
    return _grid_frame(first, second)


@pytest.mark.parametrize("name,source", _cases() if SHARED.is_dir() else [], ids=lambda v: str(v))
def test_boxes_and_landmarks_match_mediapipe(name: str, source: object) -> None:
    if (
        isinstance(source, tuple)
        and isinstance(source[0], str)
        and not (GRID_S1 / source[0]).is_file()
    ):
        pytest.skip(f"{GRID_S1 / source[0]} is missing")
    rgb = _image(source)
    ref_boxes = _reference_boxes(rgb)
    boxes = detect.detect_faces(rgb)
    assert len(ref_boxes) >= 1, "mediapipe finds a face in every test image"
    assert len(boxes) == len(ref_boxes)

    ref = _reference_landmarks(rgb, ref_boxes[0])
    face_h = float(np.linalg.norm(ref[FOREHEAD, :2] - ref[CHIN, :2]))
    for got, want in zip(boxes, ref_boxes, strict=True):
        corners = np.array([got.x, got.y, got.x + got.width, got.y + got.height])
        ref_corners = np.array([want.x, want.y, want.x + want.width, want.y + want.height])
        assert np.abs(corners - ref_corners).max() / face_h < BOUND
        assert abs(got.score - want.score) < 0.01

    lm = detect.fit_landmarks(rgb, ref_boxes[0])
    assert lm.shape == (detect.N_LANDMARKS, 3) and lm.dtype == np.float32
    xy_err = np.linalg.norm(lm[:, :2] - ref[:, :2], axis=1) / face_h
    z_err = np.abs(lm[:, 2] - ref[:, 2]) / face_h
    worst = int(xy_err.argmax())
    assert xy_err.max() < BOUND, f"point {worst} is {100 * xy_err.max():.2f} % of face height off"
    assert z_err.max() < BOUND
