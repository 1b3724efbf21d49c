"""Training examples for the motion model: phone posteriors (100 Hz) -> GRID mouth params (25 fps).

Targets come from the cached face-mesh landmarks (``landmarks.py``); inputs are either one-hot
phones from forced alignments (pre-training) or the streaming encoder's posteriors (fine-tuning). A
video frame ``n`` sees the posterior frames ``[end - window, end)`` with ``end =
(frame_end_sample(n) + lookahead_samples) // HOP_SAMPLES``, exactly as ``LearnedDriver`` does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lipstream.realtime.phonemes import PHONE_TO_INDEX, PHONES, SIL, normalise_phone

from .landmarks import CACHE_DIR, GRID_DIR, LANDMARK_DIR, mouth_params_raw

logger = logging.getLogger(__name__)

N_PHONES = len(PHONES)
SIL_INDEX = PHONES.index(SIL)
SAMPLE_RATE_HZ = 16_000
HOP_SAMPLES = 160  # posterior rate 100 Hz
VIDEO_FPS = 25
FRAME_SAMPLES = SAMPLE_RATE_HZ // VIDEO_FPS
GRID_ALIGN_TICKS_PER_S = 25_000
ALIGN_DIR = CACHE_DIR / "align" / "grid"
POSTERIOR_DIR = CACHE_DIR / "grid_posteriors"
DEV_EVERY = 20  # every 20th sorted clip is dev: the same clips the encoder holds out (shards.py)
LEVEL_EPS = 1e-9  # power floor: digital silence reads -90 dBFS


@dataclass(frozen=True)
class Clip:
    """One GRID clip ready for training.

    Attributes:
        clip_id: GRID sentence id, e.g. ``bbaf4p``. targets: ``(T, 2)`` float32 (open, width - rest)
        in face heights per video frame. valid: ``(T,)`` bool, False where no face was found. audio:
        ``(N,)`` float32 16 kHz mono in [-1, 1].
    """

    clip_id: str
    targets: np.ndarray
    valid: np.ndarray
    audio: np.ndarray


def silence_intervals_s(clip_id: str) -> list[tuple[float, float]]:
    """The ``sil`` word intervals of a GRID clip's ``.align`` file, in seconds."""
    path = GRID_DIR / "align" / f"{clip_id}.align"
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "sil":
            out.append(
                (int(parts[0]) / GRID_ALIGN_TICKS_PER_S, int(parts[1]) / GRID_ALIGN_TICKS_PER_S)
            )
    return out


def rest_width(raw: np.ndarray, valid: np.ndarray, clip_id: str) -> float:
    """Median mouth-corner distance over silent frames (the speaker at rest), in face heights."""
    t = (np.arange(len(raw)) + 0.5) / VIDEO_FPS
    silent = np.zeros(len(raw), bool)
    for start, end in silence_intervals_s(clip_id):
        silent |= (t >= start) & (t < end)
    pick = silent & valid
    if pick.sum() < 3:
        pick = valid & (raw[:, 0] <= np.nanpercentile(raw[valid, 0], 20))
    return float(np.median(raw[pick, 1]))


def load_clip(clip_id: str, landmark_dir: Path = LANDMARK_DIR) -> Clip:
    """Mouth-parameter targets and audio of one clip from the landmark cache."""
    with np.load(landmark_dir / f"{clip_id}.npz") as data:
        points, valid, audio = data["points"], data["found"], data["audio"]
    raw = mouth_params_raw(points)
    targets = raw.copy()
    targets[:, 1] -= rest_width(raw, valid, clip_id)
    targets[~valid] = 0.0
    return Clip(clip_id, targets.astype(np.float32), valid, audio.astype(np.float32) / 32768.0)


def clip_ids(landmark_dir: Path = LANDMARK_DIR) -> list[str]:
    """All cached clip ids, sorted (the split below depends on this order)."""
    return sorted(p.stem for p in landmark_dir.glob("*.npz") if not p.stem.endswith(".tmp"))


def split_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """Train / dev split of sorted clip ids: every ``DEV_EVERY``-th clip (from the first) is dev.

    The streaming encoder holds out the same clips, so dev audio is unseen by both models.
    """
    ids = sorted(ids)
    dev = [c for i, c in enumerate(ids) if i % DEV_EVERY == 0]
    train = [c for i, c in enumerate(ids) if i % DEV_EVERY != 0]
    return train, dev


def onehot_from_alignment(clip_id: str, n_frames: int, align_dir: Path = ALIGN_DIR) -> np.ndarray:
    """``(n_frames, N_PHONES)`` float32 one-hot of the forced-aligned phone at each 10 ms hop.

    Frame ``j`` is labelled with the phone covering the hop's centre ``(j + 0.5) * 10 ms``;
    unaligned time is SIL.
    """
    phones = json.loads((align_dir / f"{clip_id}.json").read_text())["phones"]
    labels = np.full(n_frames, SIL_INDEX, np.int64)
    centres = (np.arange(n_frames) + 0.5) * HOP_SAMPLES / SAMPLE_RATE_HZ
    for seg in phones:
        index = PHONE_TO_INDEX[normalise_phone(seg["phone"])]
        labels[(centres >= seg["start"]) & (centres < seg["end"])] = index
    return np.eye(N_PHONES, dtype=np.float32)[labels]


def hop_levels_db(audio: np.ndarray) -> np.ndarray:
    """``(ceil(N / 160),)`` float32 level of each 10 ms hop ``[160 j, 160 j + 160)`` in dBFS.

    Same hops as the posteriors, so level and phone windows line up; the last hop may be partial.
    Mirrors ``realtime.motion.hop_levels_db``.
    """
    n = int(np.ceil(len(audio) / HOP_SAMPLES))
    padded = np.zeros(n * HOP_SAMPLES, np.float64)
    padded[: len(audio)] = audio
    power = (padded.reshape(n, HOP_SAMPLES) ** 2).mean(1)
    return (10.0 * np.log10(power + LEVEL_EPS)).astype(np.float32)


def window_end(frame_index: int, lookahead_samples: int) -> int:
    """One past the last posterior frame that video frame ``frame_index`` may see."""
    return ((frame_index + 1) * FRAME_SAMPLES + lookahead_samples) // HOP_SAMPLES


def windows(
    sequence: np.ndarray, n_video: int, window: int, lookahead_samples: int, pad: np.ndarray
) -> np.ndarray:
    """``(n_video, window, C)`` windows of a ``(T, C)`` 100 Hz sequence, padded with ``pad``."""
    ends = np.array([window_end(n, lookahead_samples) for n in range(n_video)])
    pad_after = max(0, int(ends.max()) - len(sequence))
    fill = pad.reshape(1, -1).astype(np.float32)
    padded = np.concatenate([np.repeat(fill, window, 0), sequence, np.repeat(fill, pad_after, 0)])
    idx = ends[:, None] + np.arange(-window, 0)[None, :] + window
    return padded[idx]


def sil_row() -> np.ndarray:
    """``(N_PHONES,)`` one-hot SIL: the posterior assumed before the stream starts."""
    row = np.zeros(N_PHONES, np.float32)
    row[SIL_INDEX] = 1.0
    return row


SILENCE_DB = np.float32(10.0 * np.log10(LEVEL_EPS))
