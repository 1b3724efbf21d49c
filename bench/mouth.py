"""Mouth opening measured from pixels with MediaPipe face mesh, the same way on renders and real
video.

Opening = inner-lip gap (landmarks 13-14) over face height (landmarks 10-152), the measure the
issues
state their floors in. Used by the tests and the bench harnesses; never by the server.
"""

from __future__ import annotations

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152


class MouthMeter:
    """Measures one frame at a time, tracking the face as a video (landmarks carry over)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=1, refine_landmarks=True
        )

    def __call__(self, frame: np.ndarray) -> float:
        """Opening of an RGB uint8 frame; NaN if no face is found."""
        result = self._mesh.process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            return float("nan")
        points = result.multi_face_landmarks[0].landmark
        height, width = frame.shape[:2]
        pick = (UPPER_INNER_LIP, LOWER_INNER_LIP, FOREHEAD, CHIN)
        upper, lower, top, chin = (
            np.array([points[i].x * width, points[i].y * height]) for i in pick
        )
        return float(np.linalg.norm(upper - lower) / np.linalg.norm(top - chin))

    def close(self) -> None:
        """Frees the MediaPipe graph."""
        self._mesh.close()


def mouth_openings(frames: list[np.ndarray]) -> np.ndarray:
    """``(n,)`` float32 openings for RGB uint8 frames; NaN where no face was found."""
    meter = MouthMeter()
    try:
        return np.array([meter(frame) for frame in frames], dtype=np.float32)
    finally:
        meter.close()


def frame_loudness(
    send_times: list[float], rms: np.ndarray, frame_times: list[float]
) -> np.ndarray:
    """Voice RMS (dB) at each frame time: the loudest sent 20 ms block within ±20 ms of it."""
    send = np.asarray(send_times)
    db = 20 * np.log10(np.asarray(rms) + 1e-5)
    out = np.empty(len(frame_times), dtype=np.float32)
    for i, t in enumerate(frame_times):
        near = np.abs(send - t) <= 0.02
        out[i] = db[near].max() if near.any() else db.min()
    return out


def best_lag_correlation(
    signal: np.ndarray, reference: np.ndarray, max_lag: int
) -> tuple[float, int]:
    """Pearson r of ``signal`` against ``reference`` at the best lag in frames (positive: signal
    late)."""
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        a = signal[max(lag, 0) : len(signal) + min(lag, 0)]
        b = reference[max(-lag, 0) : len(reference) - max(lag, 0)]
        ok = ~(np.isnan(a) | np.isnan(b))
        if ok.sum() < 10 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            continue
        r = float(np.corrcoef(a[ok], b[ok])[0, 1])
        if r > best[0]:
            best = (r, lag)
    return best
