"""Channel augmentation for what a live mic and WebRTC do to speech (numpy + PyAV, 16 kHz float32).

Each function takes and returns (n,) float32 audio; ``random_chain`` draws a seeded combination of
gain, spectral tilt, band limits, room reverb, noise (white/pink/brown/babble) and an Opus round trip.
"""

from __future__ import annotations

import fractions
import random

import av
import numpy as np

SR = 16_000
OPUS_RATE_HZ = 48_000
OPUS_FRAME_SAMPLES = 960
"""20 ms at 48 kHz, as WebRTC sends."""


def _spectral_gain(audio: np.ndarray, gain_fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    n = int(2 ** np.ceil(np.log2(len(audio) + 1)))
    spec = np.fft.rfft(audio, n)
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    return np.fft.irfft(spec * gain_fn(freqs), n)[: len(audio)].astype(np.float32)


def spectral_tilt(audio: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum around 1 kHz by ``db_per_octave`` (mic and room colour)."""
    return _spectral_gain(
        audio, lambda f: 10 ** (db_per_octave * np.log2(np.maximum(f, 60.0) / 1000.0) / 20.0)
    )


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Smooth (4th-order-like) high-pass at ``low_hz`` and low-pass at ``high_hz``."""
    return _spectral_gain(
        audio,
        lambda f: 1.0 / (1.0 + (low_hz / np.maximum(f, 1.0)) ** 4) / (1.0 + (f / high_hz) ** 8),
    )


def reverb(audio: np.ndarray, rt60_s: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic exponentially decaying room response."""
    n = int(rt60_s * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    rir[0] = 0.0
    rir = rir / (np.sqrt(np.sum(rir**2)) + 1e-9)
    m = int(2 ** np.ceil(np.log2(len(audio) + n)))
    wet_sig = np.fft.irfft(np.fft.rfft(audio, m) * np.fft.rfft(rir, m), m)[: len(audio)]
    return ((1 - wet) * audio + wet * wet_sig * np.std(audio) / (np.std(wet_sig) + 1e-9)).astype(
        np.float32
    )


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise, unit RMS."""
    white = rng.standard_normal(n)
    if colour != "white":
        power = 1.0 if colour == "pink" else 2.0
        white = _spectral_gain(white, lambda f: 1.0 / np.maximum(f, 20.0) ** (power / 2))
    return (white / (np.std(white) + 1e-9)).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix ``noise`` (same length) at ``snr_db`` relative to the speech RMS."""
    speech_rms = np.sqrt(np.mean(audio**2)) + 1e-9
    noise_rms = np.sqrt(np.mean(noise**2)) + 1e-9
    return (audio + noise * speech_rms / noise_rms * 10 ** (-snr_db / 20)).astype(np.float32)


def babble(n: int, pool: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Sum of 3-6 random excerpts of other speakers' utterances, unit RMS."""
    out = np.zeros(n, dtype=np.float32)
    for _ in range(int(rng.integers(3, 7))):
        src = pool[int(rng.integers(len(pool)))]
        reps = np.tile(src, int(np.ceil(n / len(src))) + 1)
        start = int(rng.integers(len(src)))
        seg = reps[start : start + n]
        out += seg / (np.std(seg) + 1e-9)
    return out / (np.std(out) + 1e-9)


def opus_round_trip(audio: np.ndarray, bitrate: int) -> np.ndarray:
    """Encode to Opus (48 kHz, 20 ms frames) and decode back to 16 kHz with PyAV, as WebRTC does."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = OPUS_RATE_HZ, "mono", "s16", bitrate
    enc.time_base = fractions.Fraction(1, OPUS_RATE_HZ)
    dec = av.CodecContext.create("opus", "r")
    dec.sample_rate, dec.layout = OPUS_RATE_HZ, "mono"
    up = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE_HZ)
    down = av.AudioResampler(format="flt", layout="mono", rate=SR)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = SR
    hi = np.concatenate([f.to_ndarray().reshape(-1) for f in up.resample(frame) + up.resample(None)])
    hi = np.pad(hi, (0, OPUS_FRAME_SAMPLES * 2))
    out: list[np.ndarray] = []
    for i in range(0, len(hi) - OPUS_FRAME_SAMPLES + 1, OPUS_FRAME_SAMPLES):
        f = av.AudioFrame.from_ndarray(hi[i : i + OPUS_FRAME_SAMPLES].reshape(1, -1), format="s16",
                                       layout="mono")  # fmt: skip
        f.sample_rate, f.pts = OPUS_RATE_HZ, i
        for packet in enc.encode(f):
            for d in dec.decode(packet):
                out.extend(g.to_ndarray().reshape(-1) for g in down.resample(d))
    res = np.concatenate(out) if out else np.zeros(0, np.float32)
    # libopus adds a fixed 6.5 ms encoder delay (312 samples at 48 kHz -> 104 at 16 kHz).
    res = res[104 : 104 + len(audio)]
    return np.pad(res, (0, len(audio) - len(res))).astype(np.float32)


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster, resampled with PyAV/swresample.

    Duration is divided by ``factor`` and pitch and formants multiplied by it: speed and
    vocal-tract-length perturbation in one.
    """
    if abs(factor - 1.0) < 1e-3:
        return audio.astype(np.float32)
    target = int(round(SR / factor))
    res = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(audio.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = SR
    out = [f.to_ndarray().reshape(-1) for f in res.resample(frame) + res.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else audio.astype(np.float32)


def random_chain(audio: np.ndarray, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """One random channel: every step is drawn independently (seeded by ``rng``)."""
    x = audio.astype(np.float32)
    if rng.random() < 0.8:
        x = spectral_tilt(x, float(rng.uniform(-6, 6)))
    if rng.random() < 0.5:
        x = reverb(x, float(rng.uniform(0.15, 0.8)), float(rng.uniform(0.2, 0.7)), rng)
    if rng.random() < 0.5:
        x = band_limit(x, float(rng.choice([30, 100, 200, 300])), float(rng.choice([3400, 4000, 5500, 7000])))
    if rng.random() < 0.7:
        kind = str(rng.choice(["white", "pink", "brown", "babble", "babble"]))
        noise = babble(len(x), pool, rng) if kind == "babble" else coloured_noise(len(x), kind, rng)
        x = add_noise(x, noise, float(rng.uniform(0, 25)))
    x = x * 10 ** (float(rng.uniform(-25, 3)) / 20) / (np.max(np.abs(x)) + 1e-9) * 0.5
    if rng.random() < 0.5:
        x = opus_round_trip(x, int(rng.choice([12_000, 16_000, 24_000, 32_000])))
    return np.clip(x, -1, 1).astype(np.float32)
