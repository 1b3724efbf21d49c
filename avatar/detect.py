"""Photo decoding, face detection and the 478-point face mesh, on MediaPipe's models in ONNX.

The models are MediaPipe 0.10.21's own (BlazeFace full- and short-range detectors, the attention
face mesh), converted once to ONNX by ``models/landmarks/convert.py`` so that the runtime needs
only onnxruntime, not mediapipe (whose wheel pins numpy 1 and brings jax). What MediaPipe's
graphs do around the models is done here in numpy, after their calculators: SSD anchors, box
decoding and weighted non-maximum suppression (``face_detection.pbtxt``), the rotated square
region the mesh sees (``face_detection_front_detection_to_roi.pbtxt``), and the refinement of
the mesh by the lips, eyes and irises (``tensors_to_face_landmarks_with_attention.pbtxt``).
``tests/test_detect_parity.py`` checks the result against mediapipe itself.

The full-range detector finds small faces in large photos (a full-body portrait); the mesh then
runs on a square crop around the chosen face, where it sees the face at a size it was trained on.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from lipstream.avatar.errors import NoFaceError, NotAnImageError, PhotoTooLargeError
from lipstream.realtime.onnx_session import onnx_session

MAX_PIXELS = 20_000_000  # the server's upload limit; decoding more costs seconds and hundreds of MB
MESH_CROP_SCALE = 2.2  # mesh crop side / detection box side: the whole head plus margin
MESH_CROP_PX = 512  # the mesh model works at 192 px; a larger crop only costs resize time
# FaceMesh's own detector threshold (its min_detection_confidence, which, unlike FaceDetection's,
# mediapipe 0.10.21 does apply: 0.3 matches it to 0.005 % of face height, 0.5 to 0.8 %).
MESH_DETECTION_CONFIDENCE = 0.3
N_LANDMARKS = 478
MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "landmarks"

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


@dataclass(frozen=True)
class _Detector:
    """One BlazeFace model and its SSD anchor layout (``face_detection_*_range.pbtxt``)."""

    model: str
    size: int  # square input side in px
    strides: tuple[int, ...]
    interpolated_anchor: bool  # an extra anchor per cell (interpolated_scale_aspect_ratio 1.0)
    min_score: float  # candidates below are dropped before non-max suppression


# The thresholds are the graphs' own: mediapipe 0.10.21 ignores the Python API's
# min_detection_confidence (measured: 0.3 and 0.95 give the same detections), so these are what
# the mediapipe-based code this replaces actually used.
FULL_RANGE = _Detector("face_detection_full_range", 192, (4,), False, 0.6)
SHORT_RANGE = _Detector("face_detection_short_range", 128, (8, 16, 16, 16), True, 0.5)
NMS_IOU = 0.3


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


def _session(name: str) -> ort.InferenceSession:
    """The model ``models/landmarks/<name>.onnx``, loaded once per process, one thread."""
    return onnx_session(MODEL_DIR / f"{name}.onnx")


@functools.cache
def _refinement() -> dict[str, list[int]]:
    """Mesh indices that the lips / left eye / right eye outputs replace (mesh.json)."""
    return json.loads((MODEL_DIR / "mesh.json").read_text())


@functools.cache
def _anchors(det: _Detector) -> np.ndarray:
    """``(N, 2)`` anchor centres in [0, 1] (SsdAnchorsCalculator, fixed_anchor_size: w = h = 1)."""
    out = []
    i = 0
    while i < len(det.strides):
        stride, n = det.strides[i], 0
        while i < len(det.strides) and det.strides[i] == stride:  # same-stride layers share a grid
            n += 2 if det.interpolated_anchor else 1
            i += 1
        side = -(-det.size // stride)
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        centres = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def _warp_rect(
    rgb: np.ndarray, cx: float, cy: float, w: float, h: float, angle: float, size: int, border: int
) -> np.ndarray:
    """The rotated rectangle (px, radians) resampled to ``size``², corners to corners.

    As MediaPipe's ImageToTensorCalculator on CPU: ``cv::boxPoints`` to the tensor's corners,
    bilinear.
    """
    src = cv2.boxPoints(((cx, cy), (w, h), angle * 180.0 / np.pi)).astype(np.float32)
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    mat = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(rgb, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(xmin, ymin, xmax, ymax)`` box with ``(N, 4)`` boxes."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _run_detector(
    rgb: np.ndarray, det: _Detector, min_score: float | None = None
) -> list[np.ndarray]:
    """Detections of one model on the whole photo, best first.

    Each is ``(17,)``: xmin, ymin, xmax, ymax, 6 keypoints (x, y), score; in photo px.
    The photo is letterboxed to a square (zero border), as ``keep_aspect_ratio: true``.
    """
    h, w = rgb.shape[:2]
    side = float(max(w, h))
    tensor = _warp_rect(rgb, w / 2, h / 2, side, side, 0.0, det.size, cv2.BORDER_CONSTANT)
    x = tensor.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
    sess = _session(det.model)
    regressors, scores = sess.run(None, {sess.get_inputs()[0].name: x})
    raw = regressors[0].astype(np.float64)
    logits = np.clip(scores[0, :, 0].astype(np.float64), -100, 100)
    score = 1.0 / (1.0 + np.exp(-logits))
    keep = score >= (det.min_score if min_score is None else min_score)
    if not keep.any():
        return []
    anchors = _anchors(det)[keep].astype(np.float64)
    raw, score = raw[keep] / det.size, score[keep]
    cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
    bw, bh = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    found = _weighted_nms(np.concatenate([boxes, kps.reshape(-1, 12)], 1), score)
    # tensor [0, 1] -> photo px: the letterbox square is centred on the photo
    out = []
    for d in found:
        d = d.copy()
        d[0:16:2] = d[0:16:2] * side + (w - side) / 2
        d[1:16:2] = d[1:16:2] * side + (h - side) / 2
        out.append(d)
    return out


def _weighted_nms(values: np.ndarray, score: np.ndarray) -> list[np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression (IoU > 0.3 averaged by score, best score kept)."""
    order = list(np.argsort(-score, kind="stable"))
    out = []
    while order:
        top = order[0]
        iou = _iou(values[top, :4], values[order, :4])
        group = [i for i, v in zip(order, iou, strict=True) if v > NMS_IOU]
        order = [i for i, v in zip(order, iou, strict=True) if v <= NMS_IOU]
        weights = score[group]
        merged = (values[group] * weights[:, None]).sum(0) / weights.sum()
        out.append(np.concatenate([merged, [score[top]]]))
    return out


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """All faces found by the full-range detector (short-range as a fallback), largest first."""
    boxes: list[FaceBox] = []
    for det in (FULL_RANGE, SHORT_RANGE):  # full range (to ~5 m), short range (close-ups)
        for d in _run_detector(rgb, det):
            boxes.append(FaceBox(d[0], d[1], d[2] - d[0], d[3] - d[1], float(d[16])))
        if boxes:
            break
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def _mesh(rgb: np.ndarray) -> np.ndarray | None:
    """MediaPipe FaceMesh (static image, one face, refined) on ``rgb``: ``(478, 3)`` px, or None.

    The short-range detector's best face gives a square region rotated so the eyes are level
    (1.5x the box's long side); the attention mesh runs on it at 192 px; lips, eyes and irises
    refine the mesh; the points go back to ``rgb`` pixels (z in the same px scale).
    """
    found = _run_detector(rgb, SHORT_RANGE, MESH_DETECTION_CONFIDENCE)
    if not found:
        return None
    d = found[0]
    right_eye, left_eye = d[4:6], d[6:8]
    angle = -np.arctan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    angle = angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))
    cx, cy = (d[0] + d[2]) / 2, (d[1] + d[3]) / 2
    side = max(d[2] - d[0], d[3] - d[1]) * 1.5
    return mesh_in_region(rgb, float(cx), float(cy), float(side), float(angle))


def mesh_in_region(
    rgb: np.ndarray, cx: float, cy: float, side: float, angle: float
) -> np.ndarray | None:
    """The refined mesh in one rotated square region of ``rgb``: ``(478, 3)`` px, or None.

    The attention mesh runs on the region (centre ``cx, cy``, ``side`` px, rotated by ``angle``) at
    192 px; lips, eyes and irises refine it; the points go back to ``rgb`` pixels (z in the same px
    scale). ``_mesh`` finds the region with the detector; a tracker (``dub/track.py``) takes it
    from the previous frame's points, as MediaPipe's video mode does.
    """
    crop = _warp_rect(rgb, cx, cy, side, side, angle, 192, cv2.BORDER_REPLICATE)
    sess = _session("face_landmark_with_attention")
    outs = sess.run(None, {sess.get_inputs()[0].name: crop.astype(np.float32)[None] / 255.0})
    names = [o.name for o in sess.get_outputs()]
    t = dict(zip(names, outs, strict=True))
    if 1.0 / (1.0 + np.exp(-float(t["conv_faceflag"].ravel()[0]))) < 0.5:
        return None
    pts = np.zeros((N_LANDMARKS, 3), np.float64)
    pts[:468] = t["output_mesh_identity"].reshape(468, 3)
    ref = _refinement()
    for key, name in (
        ("lips", "output_lips"),
        ("left_eye", "output_left_eye"),
        ("right_eye", "output_right_eye"),
    ):
        pts[ref[key], :2] = t[name].reshape(-1, 2)
    for start, key, name in (
        (468, "left_eye", "output_left_iris"),
        (473, "right_eye", "output_right_iris"),
    ):
        pts[start : start + 5, :2] = t[name].reshape(5, 2)
        pts[start : start + 5, 2] = pts[ref[key][:16], 2].mean()
    # tensor px -> crop-relative -> photo px (LandmarkProjectionCalculator; square region)
    rel = pts / 192.0 - np.array([0.5, 0.5, 0.0])
    c, s = np.cos(angle), np.sin(angle)
    out = np.empty_like(rel)
    out[:, 0] = (c * rel[:, 0] - s * rel[:, 1]) * side + cx
    out[:, 1] = (s * rel[:, 0] + c * rel[:, 1]) * side + cy
    out[:, 2] = rel[:, 2] * side
    return out


def fit_landmarks(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    """Fits the 478-point mesh to the face in ``box``: ``(478, 3)`` float32 (x, y px; z relative).

    Raises:
        NoFaceError: the mesh model found no face in the crop around the box.
    """
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
    pts = _mesh(crop)
    if pts is None:
        raise NoFaceError(
            "a face was detected but its landmarks could not be fitted; try a clearer photo"
        )
    out = np.empty((N_LANDMARKS, 3), np.float32)
    out[:, 0] = (pts[:, 0] - mat[0, 2]) / scale
    out[:, 1] = (pts[:, 1] - mat[1, 2]) / scale
    out[:, 2] = pts[:, 2] / scale
    return out
