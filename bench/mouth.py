"""Mouth opening measured from pixels with MediaPipe face mesh, the same way on renders and real video.

Opening = inner-lip gap (landmarks 13-14) over face height (landmarks 10-152), the measure the issues
state their floors in. Used by the tests and the bench harnesses; never by the server.
"""

from __future__ import annotations

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152


def mouth_openings(frames: list[np.ndarray]) -> np.ndarray:
    """``(n,)`` float32 openings for RGB uint8 frames; NaN where no face was found.

    Frames are tracked as a video (landmarks carry over), as a viewer's eye would.
    """
    import mediapipe as mp

    out = np.full(len(frames), np.nan, dtype=np.float32)
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=True
    ) as mesh:
        for i, frame in enumerate(frames):
            result = mesh.process(np.ascontiguousarray(frame))
            if not result.multi_face_landmarks:
                continue
            points = result.multi_face_landmarks[0].landmark
            height, width = frame.shape[:2]
            xy = np.array([[p.x * width, p.y * height] for p in points], dtype=np.float32)
            face_height = np.linalg.norm(xy[FOREHEAD] - xy[CHIN])
            out[i] = np.linalg.norm(xy[UPPER_INNER_LIP] - xy[LOWER_INNER_LIP]) / face_height
    return out


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
    """Pearson r of ``signal`` against ``reference`` at the best lag in frames (positive: signal late)."""
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
