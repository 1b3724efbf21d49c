"""Per-frame MediaPipe face-mesh landmarks of the GRID s1 videos, cached as one npz per clip.

Why: the motion model learns mouth parameters measured on real faces, and the self-reenactment
benchmark measures the same parameters on our renders, so both sides share ``mouth_params`` below.

Run (CPU-heavy, one thread):
    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.landmarks

Each ``<cache>/grid_landmarks/<clip>.npz`` holds:
    points:   (T, 478, 3) float32 pixel coordinates (x, y, z*width), NaN where no face was found
    found:    (T,) bool lips:     (T, len(LIP_JAW_IDS), 2) float32 lip/jaw points normalised for
    head pose and size audio:    (N,) int16 mono 16 kHz soundtrack fps:      scalar, video frame
    rate
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

GRID_DIR = Path(os.environ.get("LIPSTREAM_DATA", "/work/shared/data")) / "grid"
CACHE_DIR = Path(os.environ.get("LIPSTREAM_CACHE", Path.home() / ".cache" / "lipstream"))
LANDMARK_DIR = CACHE_DIR / "grid_landmarks"
AUDIO_RATE_HZ = 16_000
N_MESH_POINTS = 478

# Mouth-parameter landmarks, as defined in realtime/pose.py.
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
FOREHEAD_TOP, CHIN = 10, 152
# Stable points for pose normalisation: outer eye corners and the nose bridge do not move with
# speech.
EYE_OUTER_RIGHT, EYE_OUTER_LEFT, NOSE_BRIDGE = 33, 263, 168
# Lips (outer + inner contours) and lower jaw line, for the PCA of mouth shapes.
LIP_JAW_IDS: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
    172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397,
)  # fmt: skip


def mouth_params_raw(points: np.ndarray) -> np.ndarray:
    """Raw mouth geometry of landmark frames, in face heights, from 2-D pixel positions.

    Args:
        points: ``(..., 478, >=2)`` landmark pixel coordinates (x right, y down).

    Returns:
        ``(..., 2)`` float32: inner-lip gap dist(13, 14) and corner distance dist(61, 291), both
        over face height dist(10, 152). Subtract the speaker's rest width to get ``MOUTH_PARAMS``
        ``width``.
    """
    xy = points[..., :2].astype(np.float64)

    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(xy[..., a, :] - xy[..., b, :], axis=-1)

    face_h = dist(FOREHEAD_TOP, CHIN)
    out = np.stack([dist(UPPER_INNER_LIP, LOWER_INNER_LIP), dist(MOUTH_LEFT, MOUTH_RIGHT)], -1)
    return (out / face_h[..., None]).astype(np.float32)


# Shape landmarks beyond open/width (see realtime/pose.py MOUTH_PARAMS for the definitions).
NOSE_TIP = 1
UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 0, 17
RAW_SHAPE_FIELDS = ("open", "width", "jaw", "upper_red", "lower_red", "face", "eye")
"""Columns of ``mouth_shape_raw``: open and width over face height (as ``mouth_params_raw``);
jaw (nose tip 1 to chin 152), upper_red (upper vermilion 0-13), lower_red (lower vermilion 14-17)
and face (face height 10-152) over the eye distance 33-263; the eye distance itself in px."""


def mouth_shape_raw(points: np.ndarray) -> np.ndarray:
    """Raw per-frame mouth geometry ``(..., len(RAW_SHAPE_FIELDS))`` float32 (see that tuple).

    ``points`` are ``(..., 478, >=2)`` pixel coordinates; 2-D only (MediaPipe's depth of the lips
    did not follow rounding on GRID s1: /uw/ frames read 0.4 sd *behind* the mean). The speaker's
    rest values are subtracted by the caller (``dataset.shape_targets``).
    """
    xy = points[..., :2].astype(np.float64)

    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(xy[..., a, :] - xy[..., b, :], axis=-1)

    eye = dist(EYE_OUTER_RIGHT, EYE_OUTER_LEFT)
    out = [
        *np.moveaxis(mouth_params_raw(points).astype(np.float64), -1, 0),
        dist(NOSE_TIP, CHIN) / eye,
        dist(UPPER_LIP_TOP, UPPER_INNER_LIP) / eye,
        dist(LOWER_INNER_LIP, LOWER_LIP_BOTTOM) / eye,
        dist(FOREHEAD_TOP, CHIN) / eye,
        eye,
    ]
    return np.stack(out, -1).astype(np.float32)


def normalise_lips(points: np.ndarray) -> np.ndarray:
    """Lip/jaw points with head roll, position and size removed.

    Origin at the nose bridge, x along the outer eye corners, unit = eye-corner distance (which,
    unlike face height, does not change when the jaw opens).

    Args:
        points: ``(T, 478, >=2)`` pixel coordinates.

    Returns:
        ``(T, len(LIP_JAW_IDS), 2)`` float32.
    """
    xy = points[..., :2].astype(np.float64)
    eye_vec = xy[:, EYE_OUTER_LEFT] - xy[:, EYE_OUTER_RIGHT]
    scale = np.linalg.norm(eye_vec, axis=-1)[:, None]
    cos, sin = (eye_vec / scale).T
    rel = xy[:, LIP_JAW_IDS] - xy[:, NOSE_BRIDGE][:, None, :]
    x = rel[..., 0] * cos[:, None] + rel[..., 1] * sin[:, None]
    y = -rel[..., 0] * sin[:, None] + rel[..., 1] * cos[:, None]
    return (np.stack([x, y], -1) / scale[:, None]).astype(np.float32)


@dataclass(frozen=True)
class ClipVideo:
    """Decoded clip: RGB frames ``(T, H, W, 3)`` uint8, 16 kHz int16 audio and the frame rate."""

    frames: np.ndarray
    audio: np.ndarray
    fps: float


def decode_clip(path: Path) -> ClipVideo:
    """Decodes a GRID mp4 into RGB frames and its soundtrack resampled to 16 kHz mono."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE_HZ)
        chunks = []
        for frame in container.decode(audio=0):
            chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
        chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    audio = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    return ClipVideo(frames=frames, audio=audio, fps=fps)


class MeshTracker:
    """MediaPipe face mesh (478 points, refined lips/irises) in video mode, one face.

    ``refine=False`` and ``confidence=0.3`` give the plain mesh (468 points, NaN-padded to 478)
    that ``../shared/checks/shape_eval.py`` measures with.
    """

    def __init__(
        self, static_image_mode: bool = False, refine: bool = True, confidence: float = 0.5
    ) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=1,
            refine_landmarks=refine,
            min_detection_confidence=confidence,
            min_tracking_confidence=confidence,
        )

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Landmarks of ``(T, H, W, 3)`` uint8 RGB frames as ``(T, 478, 3)`` float32 pixels, NaN if
        none.
        """
        height, width = frames.shape[1:3]
        out = np.full((len(frames), N_MESH_POINTS, 3), np.nan, np.float32)
        for i, frame in enumerate(frames):
            result = self._mesh.process(np.ascontiguousarray(frame))
            if not result.multi_face_landmarks:
                continue
            lm = result.multi_face_landmarks[0].landmark
            out[i, : len(lm)] = [(p.x * width, p.y * height, p.z * width) for p in lm]
        return out

    def close(self) -> None:
        """Frees the MediaPipe graph."""
        self._mesh.close()


def extract_clip(path: Path, out_dir: Path) -> Path:
    """Writes ``out_dir/<clip>.npz`` for one GRID video (see the module docstring)."""
    clip = decode_clip(path)
    tracker = MeshTracker()
    try:
        points = tracker(clip.frames)
    finally:
        tracker.close()
    found = ~np.isnan(points[:, 0, 0])
    lips = np.full((len(points), len(LIP_JAW_IDS), 2), np.nan, np.float32)
    if found.any():
        lips[found] = normalise_lips(points[found])
    out = out_dir / f"{path.stem}.npz"
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, points=points, found=found, lips=lips, audio=clip.audio, fps=clip.fps)
    tmp.replace(out)
    return out


def main() -> None:
    """Extracts every GRID s1 clip not yet cached."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=GRID_DIR / "s1")
    parser.add_argument("--out", type=Path, default=LANDMARK_DIR)
    parser.add_argument("--limit", type=int, default=0, help="stop after this many clips (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = sorted(args.videos.glob("*.mp4"))
    if args.limit:
        paths = paths[: args.limit]
    for i, path in enumerate(paths):
        if (args.out / f"{path.stem}.npz").exists():
            continue
        extract_clip(path, args.out)
        if i % 25 == 0:
            logger.info("landmarks: %d/%d %s", i + 1, len(paths), path.stem)
    (args.out / "DONE").write_text(f"{len(paths)} clips\n")


if __name__ == "__main__":
    main()
