"""Streaming log-mel features with a causal running normalisation (numpy only).

The same classes produce the training features (``models/encoder/shards.py``) and the live ones, so the
encoder sees identical inputs in both. Frame ``t`` is the 25 ms window ending at sample ``(t + 1) * 160``
(zeros before the start), emitted as soon as that sample has arrived: the front end adds no look-ahead.
Chunked and whole-signal runs give the same frames (up to float rounding of batched BLAS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16_000
HOP_SAMPLES = 160
"""10 ms hop: one feature frame (and one encoder output) per 160 input samples."""
WIN_SAMPLES = 400
"""25 ms analysis window."""
N_FFT = 512
N_MELS = 40
FMIN_HZ = 20.0
FMAX_HZ = 7_600.0
LOG_FLOOR = 1e-6
"""Added to mel power before the log, so digital silence stays finite (input full scale is +-1)."""
NORM_WINDOW_FRAMES = 500
"""Running normalisation forgets with a 5 s time constant; before that it is a cumulative mean."""
NORM_VAR_PRIOR = 4.0
"""Prior per-bin variance of log-mel (nats^2), weighted as NORM_VAR_PRIOR_FRAMES frames."""
NORM_VAR_PRIOR_FRAMES = 50
NORM_EPS = 1e-3


@dataclass(frozen=True)
class FeatureConfig:
    """The feature contract a model is trained with; shipped beside the model and checked at load."""

    sample_rate_hz: int = SAMPLE_RATE_HZ
    hop_samples: int = HOP_SAMPLES
    win_samples: int = WIN_SAMPLES
    n_fft: int = N_FFT
    n_mels: int = N_MELS
    fmin_hz: float = FMIN_HZ
    fmax_hz: float = FMAX_HZ
    norm_window_frames: int = NORM_WINDOW_FRAMES


def hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """HTK mel scale (the one Sphinx uses too)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: float | np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """HTK-mel triangular filters, shape (n_fft // 2 + 1, n_mels), float32."""
    mel_pts = np.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    bins = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate_hz)
    fb = np.zeros((bins.size, cfg.n_mels))
    for m in range(cfg.n_mels):
        lo, mid, hi = hz_pts[m], hz_pts[m + 1], hz_pts[m + 2]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        fb[:, m] = np.maximum(0.0, np.minimum(rise, fall))
    return fb.astype(np.float32)


class LogMelExtractor:
    """Causal log-mel: push 16 kHz float32 audio of any length, get the frames it completes.

    Not thread-safe; one per stream. ``push`` returns float32 (k, n_mels).
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self._window = np.hanning(cfg.win_samples + 2)[1:-1].astype(np.float32)
        self._fb = mel_filterbank(cfg)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (history = zeros)."""
        self._buf = np.zeros(self.cfg.win_samples - self.cfg.hop_samples, dtype=np.float32)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Append samples; return log-mel of every newly completed frame, (k, n_mels) float32."""
        if audio.ndim != 1:
            raise ValueError(f"expected mono (n,) audio, got shape {audio.shape}")
        buf = np.concatenate([self._buf, audio.astype(np.float32, copy=False)])
        win, hop = self.cfg.win_samples, self.cfg.hop_samples
        k = max(0, (buf.size - win) // hop + 1)
        self._buf = buf[k * hop :]
        if k == 0:
            return np.zeros((0, self.cfg.n_mels), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buf, win)[::hop][:k] * self._window
        spec = np.fft.rfft(frames, n=self.cfg.n_fft, axis=-1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        return np.log(power @ self._fb + LOG_FLOOR).astype(np.float32)


class RunningNormaliser:
    """Causal per-bin mean/variance normalisation: cumulative at first, then a 5 s exponential window.

    Works like per-utterance normalisation on short clips, and tracks a live stream's channel
    (gain, tilt, mic) without look-ahead. State is three small arrays; ``push`` is (k, n) -> (k, n).
    """

    def __init__(self, n_bins: int = N_MELS, window_frames: int = NORM_WINDOW_FRAMES) -> None:
        self.n_bins = n_bins
        self.window_frames = window_frames
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._count = 0
        self._mean = np.zeros(self.n_bins, dtype=np.float64)
        self._var = np.full(self.n_bins, NORM_VAR_PRIOR, dtype=np.float64)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Normalise (k, n_bins) frames in order, updating the running statistics."""
        out = np.empty(frames.shape, dtype=np.float32)
        floor = 1.0 / self.window_frames
        for i, x in enumerate(frames.astype(np.float64)):
            self._count += 1
            self._mean += max(1.0 / self._count, floor) * (x - self._mean)
            d = x - self._mean
            self._var += max(1.0 / (self._count + NORM_VAR_PRIOR_FRAMES), floor) * (
                d * d - self._var
            )
            out[i] = d / np.sqrt(self._var + NORM_EPS)
        return out


class FeatureStream:
    """Audio -> normalised log-mel frames, the encoder's exact input. One per stream."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self._mel = LogMelExtractor(cfg)
        self._norm = RunningNormaliser(cfg.n_mels, cfg.norm_window_frames)

    def reset(self) -> None:
        """Start a new stream."""
        self._mel.reset()
        self._norm.reset()

    def push(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz float32 (n,) -> (k, n_mels) float32 normalised frames completed by these samples."""
        return self._norm.push(self._mel.push(audio))


def features_whole(audio: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """All complete frames of one utterance, (len(audio) // hop, n_mels); used to build training data."""
    return FeatureStream(cfg).push(audio)
