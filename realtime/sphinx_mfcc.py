"""Streaming Sphinx-style cepstra (13 MFCC + delta + delta-delta): the encoder's GMM-layer input.

The encoder scores these frames with the fixed Gaussians of pocketsphinx's en-us acoustic model (a
layer inside ``encoder.onnx``), so they must match the front end that model was trained with (its
``feat.params``): 16 kHz, 25.625 ms Hamming window, 10 ms hop, pre-emphasis 0.97, 512-point FFT,
25 unit-area mel filters from 130 to 6800 Hz rounded to FFT bins, natural log, orthonormal DCT-II,
lifter 22, and the ``1s_c_d_dd`` dynamic features. Two things differ, because the stream must be
causal: cepstral mean normalisation is a running mean (``batch`` CMN needs the whole utterance),
and the dynamic features need three future frames, so row ``t`` of this stream is the 39-vector of
cepstral frame ``t - DELAY_FRAMES``. The encoder's 50 ms look-ahead covers that delay: at input
step ``t`` it emits frame ``t - 5`` and has the 39-vectors of frames up to ``t - 3``.
numpy only; chunked and whole-signal runs give the same frames (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import HOP_SAMPLES, SAMPLE_RATE_HZ, hz_to_mel, mel_to_hz

WIN_SAMPLES = 410
"""25.625 ms, Sphinx's default window at 16 kHz."""
N_FFT = 512
N_FILTERS = 25
N_CEP = 13
LOWER_HZ = 130.0
UPPER_HZ = 6_800.0
PRE_EMPHASIS = 0.97
LIFTER = 22
INT16_SCALE = 32_768.0
"""Sphinx works on int16 sample values; the log floor below is in those units."""
LOG_FLOOR = 1e-4
CMN_WINDOW_FRAMES = 500
"""Running cepstral mean: cumulative at first, then a 5 s exponential window (as for log-mels)."""
DELAY_FRAMES = 3
"""``1s_c_d_dd``: delta-delta of frame t reads cepstra t - 3 .. t + 3."""
N_FEATURES = 3 * N_CEP


@dataclass(frozen=True)
class MfccConfig:
    """The Sphinx front-end contract a model is trained with; shipped in the model's metadata."""

    win_samples: int = WIN_SAMPLES
    n_fft: int = N_FFT
    n_filters: int = N_FILTERS
    n_cep: int = N_CEP
    lower_hz: float = LOWER_HZ
    upper_hz: float = UPPER_HZ
    pre_emphasis: float = PRE_EMPHASIS
    lifter: int = LIFTER
    cmn_window_frames: int = CMN_WINDOW_FRAMES
    delay_frames: int = DELAY_FRAMES


def sphinx_filterbank(cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """Sphinx's mel filters (edges rounded to FFT bins, unit area), (n_fft // 2 + 1, n_filters)."""
    step = SAMPLE_RATE_HZ / cfg.n_fft
    lo, hi = float(hz_to_mel(cfg.lower_hz)), float(hz_to_mel(cfg.upper_hz))
    width = (hi - lo) / (cfg.n_filters + 1)
    bins = np.arange(cfg.n_fft // 2 + 1) * step
    fb = np.zeros((bins.size, cfg.n_filters))
    for i in range(cfg.n_filters):
        left, centre, right = (
            np.floor(mel_to_hz(lo + (i + j) * width) / step + 0.5) * step for j in range(3)
        )
        rise = (bins - left) / (centre - left)
        fall = (right - bins) / (right - centre)
        inside = (bins >= left) & (bins <= right) & (bins < SAMPLE_RATE_HZ / 2)
        fb[:, i] = np.where(inside, np.minimum(rise, fall) * 2.0 / (right - left), 0.0)
    return fb


def dct_matrix(cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """Orthonormal DCT-II (``-transform dct``) times the sine lifter, (n_filters, n_cep)."""
    n = cfg.n_filters
    k = np.arange(cfg.n_cep)[None, :]
    j = np.arange(n)[:, None]
    basis = np.cos(np.pi / n * k * (j + 0.5)) * np.sqrt(2.0 / n)
    basis[:, 0] = np.sqrt(1.0 / n)
    lifter = 1.0 + cfg.lifter / 2.0 * np.sin(np.arange(cfg.n_cep) * np.pi / cfg.lifter)
    return basis * lifter[None, :]


class SphinxCepstra:
    """Causal cepstra: push 16 kHz float32 audio, get (k, n_cep) float64 frames, mean not removed.

    Frame t is the window ending at sample (t + 1) * 160 (zeros before the start), like the log-mel
    frames, so both streams give one frame per 10 ms hop at the same instants.
    """

    def __init__(self, cfg: MfccConfig = MfccConfig()) -> None:
        self.cfg = cfg
        n = cfg.win_samples
        self._window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
        self._basis = sphinx_filterbank(cfg)
        self._dct = dct_matrix(cfg)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (history = zeros)."""
        self._buf = np.zeros(self.cfg.win_samples - HOP_SAMPLES + 1, dtype=np.float64)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Append samples; cepstra of every newly completed frame."""
        buf = np.concatenate([self._buf, audio.astype(np.float64) * INT16_SCALE])
        win = self.cfg.win_samples
        k = max(0, (buf.size - 1 - win) // HOP_SAMPLES + 1)
        self._buf = buf[k * HOP_SAMPLES :]
        if k == 0:
            return np.zeros((0, self.cfg.n_cep))
        emph = buf[1:] - self.cfg.pre_emphasis * buf[:-1]
        frames = (
            np.lib.stride_tricks.sliding_window_view(emph, win)[::HOP_SAMPLES][:k] * self._window
        )
        spec = np.fft.rfft(frames, n=self.cfg.n_fft, axis=-1)
        power = spec.real**2 + spec.imag**2
        return np.log(power @ self._basis + LOG_FLOOR) @ self._dct


class SphinxFeatureStream:
    """Audio -> (k, 39) float32 ``1s_c_d_dd`` frames with running CMN, delayed by DELAY_FRAMES.

    Emits exactly one frame per 10 ms hop, in step with ``features.FeatureStream``; cepstra before
    the start of the stream count as zeros (the running mean), as in training.
    """

    def __init__(self, cfg: MfccConfig = MfccConfig()) -> None:
        self.cfg = cfg
        self._cep = SphinxCepstra(cfg)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._cep.reset()
        self._count = 0
        self._mean = np.zeros(self.cfg.n_cep)
        self._hist = np.zeros((2 * self.cfg.delay_frames, self.cfg.n_cep))

    def push(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz float32 (n,) -> (k, 39) float32 frames, one per hop these samples complete."""
        if audio.ndim != 1:
            raise ValueError(f"expected mono (n,) audio, got shape {audio.shape}")
        cep = self._cep.push(audio)
        normed = np.empty_like(cep)
        floor = 1.0 / self.cfg.cmn_window_frames
        for i, c in enumerate(cep):
            self._count += 1
            self._mean += max(1.0 / self._count, floor) * (c - self._mean)
            normed[i] = c - self._mean
        c = np.concatenate([self._hist, normed])
        self._hist = c[len(c) - 2 * self.cfg.delay_frames :]
        k = len(normed)
        # Output i (frame t - 3 of input frame t = i) centres on c[i + 3] in the padded array.
        mid = np.arange(k) + self.cfg.delay_frames
        d = c[mid + 2] - c[mid - 2]
        dd = (c[mid + 3] - c[mid - 1]) - (c[mid + 1] - c[mid - 3])
        return np.concatenate([c[mid], d, dd], axis=1).astype(np.float32)


def sphinx_features_whole(audio: np.ndarray, cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """All frames of one utterance, in step with ``features.features_whole``; for training data."""
    return SphinxFeatureStream(cfg).push(audio)
