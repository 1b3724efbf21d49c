"""Test voices made on the spot with espeak-ng (no recordings are shipped)."""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE_HZ = 48_000
ONSET_DBFS = -30.0  # a syllable "starts" where its level first crosses this


def espeak(text: str, speed_wpm: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at 48 kHz."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "voice.wav"
        subprocess.run(["espeak-ng", "-s", str(speed_wpm), "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0
            rate = w.getframerate()
    positions = np.arange(0, len(pcm) * RATE_HZ / rate) * rate / RATE_HZ
    return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)


def trim(samples: np.ndarray) -> np.ndarray:
    """Cuts leading and trailing silence (below ``ONSET_DBFS``)."""
    loud = np.flatnonzero(np.abs(samples) > 10 ** (ONSET_DBFS / 20))
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


JITTER_S = (
    0.05  # random shift of each onset, so onsets fall at every phase of the 40 ms video frame
)


VOWEL_ONSETS = ("ah", "odd", "up", "eye", "after", "apple", "out", "ox")
"""Words that start on an open vowel: the mouth must open at the sound's onset, with no closed
consonant first (a correct /m/ or /p/ keeps the lips shut for 50-100 ms, which is not latency)."""


def onset_train(
    syllables: list[str], count: int, period_s: float, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """``count`` espeak-ng syllables about ``period_s`` apart; returns samples and onsets."""
    return place([trim(espeak(s)) for s in syllables], count, period_s, seed)


def place(
    clips: list[np.ndarray], count: int, period_s: float, seed: int
) -> tuple[np.ndarray, list[int]]:
    """Puts ``count`` clips (cycling) about ``period_s`` apart, peak-normalised; returns onsets."""
    period = int(period_s * RATE_HZ)
    shifts = np.random.default_rng(seed).integers(0, int(JITTER_S * RATE_HZ), count)
    out = np.zeros(period * count + RATE_HZ, dtype=np.float32)
    onsets = []
    for i in range(count):
        clip = clips[i % len(clips)][: period // 2]
        start = RATE_HZ // 2 + i * period + int(shifts[i])
        out[start : start + len(clip)] = 0.8 * clip / max(np.abs(clip).max(), 1e-6)
        onsets.append(start)
    return out, onsets
