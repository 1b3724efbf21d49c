"""Where a real face puts its voice: the voice-against-lips offset of real GRID s1 video.

    python bench/av_reference.py [--all] [--out bench/results/av_reference.json]

The same measure as the independent live probe (``../shared/checks/live_probe.py``) applies to the
avatar's returned voice and video: the loudness of the voice (log RMS of each 20 ms from its start
time) and the mouth opening (MediaPipe inner lips 13-14 over the face height 10-152, at each video
frame's time) are interpolated onto a 10 ms grid, and the offset is the shift within +-300 ms with
the best correlation (+ = mouth after voice). On real faces it is not 0: lips move before the sound
they make. This bench gives that reference, so the live figure can be read against a real face
instead of against 0. Landmarks and audio come from the motion model's cache
(``python -m lipstream.models.motion.landmarks``), video frame ``i`` at ``i / fps``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from lipstream.models.motion.dataset import clip_ids, split_ids
from lipstream.models.motion.landmarks import AUDIO_RATE_HZ, LANDMARK_DIR

logger = logging.getLogger(__name__)

GRID_STEP_S = 0.01
WINDOW_S = 0.02  # the probe's voice packets are 20 ms
MAX_LAG_STEPS = 30
MIN_FOUND = 0.95


def opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face height per frame, as the probe measures it."""
    xy = points[:, :, :2]
    gap = np.linalg.norm(xy[:, 13] - xy[:, 14], axis=1)
    face = np.linalg.norm(xy[:, 10] - xy[:, 152], axis=1)
    return gap / face


def loudness(audio: np.ndarray, starts_s: np.ndarray) -> np.ndarray:
    """Log RMS of the ``WINDOW_S`` of audio from each start time (silence floor 1e-4)."""
    x = audio.astype(np.float32) / 32768.0
    n = int(WINDOW_S * AUDIO_RATE_HZ)
    out = []
    for t in starts_s:
        i = int(round(t * AUDIO_RATE_HZ))
        seg = x[i : i + n]
        out.append(np.log(np.sqrt(np.mean(seg**2)) + 1e-4) if len(seg) else np.log(1e-4))
    return np.array(out)


def offset_ms(voice: np.ndarray, mouth: np.ndarray) -> tuple[float, float]:
    """(offset, r) of the best correlation; + means the mouth moves after the voice."""
    best = (-2.0, 0)
    for k in range(-MAX_LAG_STEPS, MAX_LAG_STEPS + 1):
        a, b = (
            (voice[: len(voice) - k], mouth[k:])
            if k >= 0
            else (voice[-k:], mouth[: len(mouth) + k])
        )
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best[0]:
            best = (r, k)
    return best[1] * GRID_STEP_S * 1000.0, best[0]


def clip_offset(clip_id: str) -> dict[str, float] | None:
    """The offset of one cached clip, or None where the face was missed too often."""
    with np.load(LANDMARK_DIR / f"{clip_id}.npz") as z:
        points, found, audio, fps = z["points"], z["found"], z["audio"], float(z["fps"])
    if found.mean() < MIN_FOUND:
        return None
    frame_t = np.arange(len(points)) / fps
    grid = np.arange(0.0, min(frame_t[-1], len(audio) / AUDIO_RATE_HZ - WINDOW_S), GRID_STEP_S)
    mouth = np.interp(grid, frame_t[found], opening(points)[found])
    lag, r = offset_ms(loudness(audio, grid), mouth)
    return {"offset_ms": lag, "r": r}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--all", action="store_true", help="every cached clip, not the 45 dev clips"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/av_reference.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ids = clip_ids() if args.all else split_ids(clip_ids())[1]
    per_clip = {c: res for c in ids if (res := clip_offset(c)) is not None}
    offsets = np.array([v["offset_ms"] for v in per_clip.values()])
    summary = {
        "clips": len(per_clip),
        "median_offset_ms": float(np.median(offsets)),
        "mean_offset_ms": round(float(offsets.mean()), 1),
        "iqr_ms": [float(np.percentile(offsets, 25)), float(np.percentile(offsets, 75))],
        "median_r": round(float(np.median([v["r"] for v in per_clip.values()])), 3),
    }
    result = {
        "command": "python bench/av_reference.py" + (" --all" if args.all else ""),
        "data": "GRID s1 (CC BY 4.0, Cooke et al. 2006); MediaPipe landmarks from the motion cache",
        "sign": "+ = mouth after voice (the live probe's convention)",
        "summary": summary,
        "per_clip": per_clip,
    }
    args.out.write_text(json.dumps(result, indent=1))
    logger.info("%s", json.dumps(summary))


if __name__ == "__main__":
    main()
