"""Agreement between a driven mouth and the real one: Pearson r and the lag of best r."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LAG_MS = 200.0


@dataclass(frozen=True)
class LipSync:
    """Per-clip agreement.

    Attributes:
        r: Pearson r at zero lag. best_r: Pearson r at the best lag within +-``MAX_LAG_MS``. lag_ms:
        lag of ``best_r``; positive means the driven mouth moves later than the real one. n_frames:
        frames where both signals were valid.
    """

    r: float
    best_r: float
    lag_ms: float
    n_frames: int


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D arrays; 0 when either is constant."""
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def lip_sync(driven: np.ndarray, real: np.ndarray, valid: np.ndarray, fps: float) -> LipSync:
    """Compares two ``(T,)`` per-frame mouth openings; ``valid`` masks frames where both exist."""
    max_lag = int(round(MAX_LAG_MS * fps / 1000.0))
    n = min(len(driven), len(real), len(valid))
    driven, real, valid = driven[:n], real[:n], valid[:n]
    r0 = pearson(driven[valid], real[valid])
    best_r, best_k = -2.0, 0
    for k in range(-max_lag, max_lag + 1):
        # driven[t + k] against real[t]: k > 0 means the driven mouth is late.
        lo, hi = max(0, -k), min(n, n - k)
        m = valid[lo:hi] & valid[lo + k : hi + k]
        if m.sum() < 10:
            continue
        r = pearson(driven[lo + k : hi + k][m], real[lo:hi][m])
        if r > best_r:
            best_r, best_k = r, k
    return LipSync(r0, best_r, best_k * 1000.0 / fps, int(valid.sum()))
