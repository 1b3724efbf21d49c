"""Training examples for the motion model: phone posteriors (100 Hz) -> GRID mouth params (25 fps).

Targets come from the cached face-mesh landmarks (``landmarks.py``); inputs are either one-hot
phones from forced alignments (pre-training) or the streaming encoder's posteriors (fine-tuning). A
video frame ``n`` sees the posterior frames ``[end - window, end)`` with ``end =
(frame_end_sample(n) + lookahead_samples) // HOP_SAMPLES``, exactly as ``LearnedDriver`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lipstream.realtime.encoder import default_model_path
from lipstream.realtime.phonemes import PHONE_TO_INDEX, PHONES, SIL, normalise_phone

from .landmarks import CACHE_DIR, GRID_DIR, LANDMARK_DIR, RAW_SHAPE_FIELDS, mouth_shape_raw

logger = logging.getLogger(__name__)

N_PHONES = len(PHONES)
SIL_INDEX = PHONES.index(SIL)
SAMPLE_RATE_HZ = 16_000
HOP_SAMPLES = 160  # posterior rate 100 Hz
VIDEO_FPS = 25
FRAME_SAMPLES = SAMPLE_RATE_HZ // VIDEO_FPS
GRID_ALIGN_TICKS_PER_S = 25_000
ALIGN_DIR = CACHE_DIR / "align" / "grid"
BILABIALS = ("B", "M", "P")
LABIODENTALS = ("F", "V")
GESTURE_RAMP_S = 0.04  # press/tuck labels fade in and out over one video frame
DEV_EVERY = 20  # every 20th sorted clip is dev: the same clips the encoder holds out (shards.py)
LEVEL_EPS = 1e-9  # power floor: digital silence reads -90 dBFS


def encoder_key(path: Path | None = None) -> str:
    """First 8 hex digits of the md5 of the encoder ONNX (default: the one in place)."""
    return hashlib.md5((path or default_model_path()).read_bytes()).hexdigest()[:8]


POSTERIOR_DIR = CACHE_DIR / f"grid_posteriors_{encoder_key()}"
"""Posteriors of the encoder in place: a new ``encoder.onnx`` reads (and writes) its own folder."""


@dataclass(frozen=True)
class Clip:
    """One GRID clip ready for training.

    Attributes:
        clip_id: GRID sentence id, e.g. ``bbaf4p``.
        targets: ``(T, N_MOUTH_PARAMS)`` float32 mouth parameters (``realtime.pose.MOUTH_PARAMS``)
            in face heights per video frame.
        valid: ``(T,)`` bool, False where no face was found.
        audio: ``(N,)`` float32 16 kHz mono in [-1, 1].
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


def silent_frames(n_frames: int, valid: np.ndarray, clip_id: str) -> np.ndarray:
    """``(T,)`` bool: frames inside the clip's ``sil`` intervals with a face (speaker at rest)."""
    t = (np.arange(n_frames) + 0.5) / VIDEO_FPS
    silent = np.zeros(n_frames, bool)
    for start, end in silence_intervals_s(clip_id):
        silent |= (t >= start) & (t < end)
    return silent & valid


def shape_targets(raw: np.ndarray, rest_pick: np.ndarray) -> np.ndarray:
    """``(T, N_MOUTH_PARAMS)`` mouth parameters (``realtime.pose.MOUTH_PARAMS``) from raw geometry.

    Args:
        raw: ``(T, len(RAW_SHAPE_FIELDS))`` from ``landmarks.mouth_shape_raw``.
        rest_pick: ``(T,)`` bool, the frames that define the speaker's rest shape (median).

    ``open`` stays over the frame's own face height; ``width`` is over it minus the rest value. The
    other parameters are eye-distance lengths minus their rest value, converted to rest face
    heights with the clip's rest face-height / eye-distance ratio (eye distance does not change
    when the jaw opens; face height does).
    """
    f = {name: raw[:, i].astype(np.float64) for i, name in enumerate(RAW_SHAPE_FIELDS)}
    rest = {name: float(np.median(v[rest_pick])) for name, v in f.items()}
    unit = rest["face"]  # rest face height in eye distances
    red = (f["upper_red"] + f["lower_red"] - rest["upper_red"] - rest["lower_red"]) / unit
    return np.stack(
        [f["open"], f["width"] - rest["width"], (f["jaw"] - rest["jaw"]) / unit, red], -1
    ).astype(np.float32)


def gesture_targets(clip_id: str, n_frames: int, align_dir: Path = ALIGN_DIR) -> np.ndarray:
    """``(T, 2)`` float32 ``press`` and ``tuck`` (0..1) per video frame from the forced alignment.

    MediaPipe at GRID's resolution does not see a lip press or a lower-lip tuck (on s1 /f/ frames
    the lower vermilion reads no thinner than average), so these two gestures are labelled from
    the phones: 1 while a bilabial (B M P) or labiodental (F V) covers the instant a frame depicts
    (its start), ramping to 0 over ``GESTURE_RAMP_S`` on either side.
    """
    phones = json.loads((align_dir / f"{clip_id}.json").read_text())["phones"]
    t = np.arange(n_frames) / VIDEO_FPS
    out = np.zeros((n_frames, 2), np.float32)
    for seg in phones:
        phone = normalise_phone(seg["phone"])
        col = 0 if phone in BILABIALS else 1 if phone in LABIODENTALS else -1
        if col < 0:
            continue
        outside = np.maximum(np.maximum(seg["start"] - t, t - seg["end"]), 0.0)
        out[:, col] = np.maximum(out[:, col], np.clip(1.0 - outside / GESTURE_RAMP_S, 0.0, 1.0))
    return out


def rest_frames(raw: np.ndarray, valid: np.ndarray, clip_id: str) -> np.ndarray:
    """Frames that define the speaker's rest shape: silent frames, else the 20 % least open."""
    pick = silent_frames(len(raw), valid, clip_id)
    if pick.sum() < 3:
        pick = valid & (raw[:, 0] <= np.nanpercentile(raw[valid, 0], 20))
    return pick


def load_clip(clip_id: str, landmark_dir: Path = LANDMARK_DIR) -> Clip:
    """Mouth-parameter targets and audio of one clip from the landmark cache and its alignment."""
    with np.load(landmark_dir / f"{clip_id}.npz") as data:
        points, valid, audio = data["points"], data["found"], data["audio"]
    raw = mouth_shape_raw(points)
    shape = shape_targets(raw, rest_frames(raw, valid, clip_id))
    aligned = (ALIGN_DIR / f"{clip_id}.json").exists()  # train.py drops clips without one
    gestures = gesture_targets(clip_id, len(raw)) if aligned else np.zeros((len(raw), 2))
    targets = np.concatenate([shape, gestures], 1)
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
