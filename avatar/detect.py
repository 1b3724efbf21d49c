"""Photo decoding, face detection and the 478-point face mesh, via MediaPipe's bundled models.

We run MediaPipe 0.10.21 itself (the legacy ``mp.solutions`` API): it ships the BlazeFace detectors
and
the attention face-mesh model inside the wheel, runs offline, and is already a dependency, whereas a
TFLite or ONNX re-host would be one more conversion to maintain for a once-per-photo step.
The full-range detector finds small faces in large photos (a full-body portrait); the mesh then runs
on a square crop around the chosen face, where it sees the face at a size it was trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from lipstream.avatar.errors import NoFaceError, NotAnImageError, PhotoTooLargeError

MAX_PIXELS = 20_000_000  # the server's upload limit; decoding more costs seconds and hundreds of MB
DETECTION_CONFIDENCE = 0.5
MESH_CROP_SCALE = 2.2  # mesh crop side / detection box side: the whole head plus margin
MESH_CROP_PX = 512  # the mesh model works at 192 px; a larger crop only costs resize time
N_LANDMARKS = 478

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceBox:
    """A detected face: axis-aligned box in photo pixels and the detector's score (0..1)."""

    x: float
    y: float
    width: float
    height: float
    score: float

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.width * self.height


def decode_photo(data: bytes) -> np.ndarray:
    """Decodes image bytes (JPEG, PNG, WebP, ...; EXIF rotation applied) to ``(H, W, 3)`` uint8 RGB.

    Raises:
        NotAnImageError: the bytes are not a readable image.
        PhotoTooLargeError: more than ``MAX_PIXELS`` pixels.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise NotAnImageError("the photo is empty (0 bytes)")
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise NotAnImageError(f"the photo could not be decoded: {exc}") from exc
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] < 1:
        raise NotAnImageError(
            "the file is not an image we can read (expected JPEG, PNG or WebP, or it is corrupt)"
        )
    if bgr.shape[0] * bgr.shape[1] > MAX_PIXELS:
        raise PhotoTooLargeError(
            f"the photo has {bgr.shape[1]}x{bgr.shape[0]} pixels; "
            f"at most {MAX_PIXELS // 1_000_000} "
            "megapixels are accepted"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """All faces found by the full-range detector (short-range as a fallback), largest first."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    boxes: list[FaceBox] = []
    for model_selection in (1, 0):  # 1: full range (to ~5 m), 0: short range (close-ups)
        with mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=DETECTION_CONFIDENCE
        ) as detector:
            result = detector.process(rgb)
        for det in result.detections or []:
            bb = det.location_data.relative_bounding_box
            boxes.append(
                FaceBox(bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h, float(det.score[0]))
            )
        if boxes:
            break
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def fit_landmarks(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    """Fits the 478-point mesh to the face in ``box``: ``(478, 3)`` float32 (x, y px; z relative).

    Raises:
        NoFaceError: the mesh model found no face in the crop around the box.
    """
    import mediapipe as mp

    side = max(box.width, box.height) * MESH_CROP_SCALE
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    scale = MESH_CROP_PX / side
    # Affine map photo -> crop; the border is replicated so faces near the edge still fit.
    mat = np.array(
        [[scale, 0, MESH_CROP_PX / 2 - scale * cx], [0, scale, MESH_CROP_PX / 2 - scale * cy]]
    )
    crop = cv2.warpAffine(
        rgb,
        mat,
        (MESH_CROP_PX, MESH_CROP_PX),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
    ) as mesh:
        result = mesh.process(crop)
    if not result.multi_face_landmarks:
        raise NoFaceError(
            "a face was detected but its landmarks could not be fitted; try a clearer photo"
        )
    pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float32)
    if pts.shape[0] != N_LANDMARKS:
        raise NoFaceError(f"the face mesh returned {pts.shape[0]} points, expected {N_LANDMARKS}")
    out = np.empty_like(pts)
    out[:, 0] = (pts[:, 0] * MESH_CROP_PX - mat[0, 2]) / scale
    out[:, 1] = (pts[:, 1] * MESH_CROP_PX - mat[1, 2]) / scale
    out[:, 2] = pts[:, 2] * MESH_CROP_PX / scale
    return out
