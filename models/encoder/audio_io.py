"""Decode any container (mp4/AAC, ogg/Opus, flac, wav) to 16 kHz mono float32 with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

SAMPLE_RATE_HZ = 16_000


def load_audio_16k(path: Path | str) -> np.ndarray:
    """Decode the first audio stream of ``path``, resampled to 16 kHz mono.

    Returns:
        float32 array of shape (n_samples,), full scale +-1.
    """
    chunks: list[np.ndarray] = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if not chunks:
        raise ValueError(f"no audio decoded from {path}")
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def to_int16_bytes(audio: np.ndarray) -> bytes:
    """float32 +-1 samples to little-endian int16 PCM bytes (pocketsphinx input)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
