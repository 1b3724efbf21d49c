"""Streaming-encoder posteriors of the GRID s1 audio, for fine-tuning the motion model.

Besides the original audio, each clip is pitch- and formant-shifted with sox (``pitch`` keeps the
duration; the few ms it moves speech are rolled back, so the video targets stay aligned), and sent
once through a random live channel: the encoder's posteriors on those versions look more like its
posteriors on other speakers and microphones, which keeps the motion model from trusting s1's exact
output.

    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.posteriors
    python -m lipstream.models.motion.posteriors --variants down400,up700,chan_dev --dev-only

The last three variants are never trained on: shifts outside the training ones and another draw of
channels, on the dev clips only, stand in for voices and microphones the motion model has not heard
(``evaluate --source up700``). Channel variants also write ``<clip>.levels.npy``, the hop levels
of the audio as heard.

Writes ``<cache>/grid_posteriors_<md5[:8] of encoder.onnx>/<variant>/<clip>.npy``: ``(ceil(N /
160), 40)`` float16 posteriors, the encoder run as in the live pipeline (20 ms chunks) plus
``flush()`` for the last frames. The folder is keyed by the encoder in place
(``dataset.POSTERIOR_DIR``), so a new encoder never reads an older one's posteriors.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
from lipstream.models.encoder import augment
from lipstream.models.encoder.shards import babble_pool

from .dataset import (
    HOP_SAMPLES,
    POSTERIOR_DIR,
    SAMPLE_RATE_HZ,
    clip_ids,
    hop_levels_db,
    split_ids,
)
from .landmarks import LANDMARK_DIR

logger = logging.getLogger(__name__)

PITCH_CENTS: dict[str, int] = {"orig": 0, "down200": -200, "up250": 250, "up450": 450}
"""Training variants: sox ``pitch`` shifts in cents (pitch and formants together, duration kept)."""
HELD_OUT_CENTS: dict[str, int] = {"down400": -400, "up700": 700}
"""Evaluation-only variants (``--dev-only``): voices further from s1 than any training variant."""
CHANNEL_SEEDS: dict[str, int] = {"chan": 20261130, "chan_dev": 20261131}
"""Variants through a random live channel (``encoder.augment.random_chain``: tilt, reverb, band
limits, noise at 0-25 dB SNR, gain, Opus), one seeded draw per clip. ``chan`` is for training,
``chan_dev`` (another seed, ``--dev-only``) for evaluation. None of these steps moves speech in
time (reverb only adds a tail; the Opus round trip removes its encoder delay)."""
CHUNK_SAMPLES = 320  # 20 ms, as the server feeds the pipeline
ALIGN_SEARCH_MS = 40  # sox moves speech by at most ~16 ms (bench/sox_pitch_delay.py)


def sox_pitch(audio: np.ndarray, cents: int) -> np.ndarray:
    """``(N,)`` float32 16 kHz audio shifted by ``cents`` with sox ``pitch``, same length.

    sox also moves the speech in time, by up to ~15 ms depending on the shift
    (``bench/sox_pitch_delay.py``); ``pitch_shift`` undoes that.
    """
    if cents == 0:
        return audio
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.raw", Path(tmp) / "out.raw"
        (np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(src)
        fmt = ["-t", "raw", "-r", str(SAMPLE_RATE_HZ), "-e", "signed", "-b", "16", "-c", "1"]
        subprocess.run(
            ["sox", *fmt, str(src), *fmt, str(dst), "pitch", str(cents)],
            check=True,
            capture_output=True,
        )
        out = np.fromfile(dst, "<i2").astype(np.float32) / 32768.0
    if len(out) < len(audio):
        out = np.pad(out, (0, len(audio) - len(out)))
    return out[: len(audio)]


def envelope_lag_samples(moved: np.ndarray, original: np.ndarray) -> int:
    """How many samples ``moved`` lags ``original`` (+ = later), to 1 ms, within +-ALIGN_SEARCH_MS.

    The lag of best correlation between the two log-RMS envelopes (10 ms windows every 1 ms): a
    pitch shift changes the spectrum, not when the syllables are loud.
    """
    step = SAMPLE_RATE_HZ // 1000
    a, b = _log_rms(original, step), _log_rms(moved, step)
    n = min(len(a), len(b))
    search = ALIGN_SEARCH_MS
    lags = np.arange(-search, search + 1)
    corr = [
        np.corrcoef(a[max(0, -k) : n - max(0, k)], b[max(0, k) : n - max(0, -k)])[0, 1]
        for k in lags
    ]
    return int(lags[int(np.nanargmax(corr))]) * step


def _log_rms(audio: np.ndarray, step: int) -> np.ndarray:
    """Log RMS of HOP_SAMPLES windows every ``step`` samples."""
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - HOP_SAMPLES + 1, step)
    return np.log(np.sqrt((power[starts + HOP_SAMPLES] - power[starts]) / HOP_SAMPLES) + 1e-4)


def pitch_shift(audio: np.ndarray, cents: int) -> np.ndarray:
    """``(N,)`` float32 16 kHz audio shifted by ``cents``, same length and timing as ``audio``.

    The moved voice stands in for another speaker against s1's real lips, so it must keep s1's
    timing: sox's time shift is measured per clip and rolled back.
    """
    if cents == 0:
        return audio
    moved = sox_pitch(audio, cents)
    lag = envelope_lag_samples(moved, audio)
    if lag > 0:
        return np.concatenate([moved[lag:], np.zeros(lag, np.float32)])
    if lag < 0:
        return np.concatenate([np.zeros(-lag, np.float32), moved[:lag]])
    return moved


def variant_audio(
    variant: str, clip_id: str, audio: np.ndarray, pool: list[np.ndarray]
) -> np.ndarray:
    """The clip's audio as ``variant`` hears it: pitch-moved, through a channel, or as recorded."""
    if variant in CHANNEL_SEEDS:
        rng = np.random.default_rng([CHANNEL_SEEDS[variant], zlib.crc32(clip_id.encode())])
        return augment.random_chain(audio, rng, pool)
    return pitch_shift(audio, {**PITCH_CENTS, **HELD_OUT_CENTS}[variant])


def encode(encoder: object, audio: np.ndarray) -> np.ndarray:
    """Posteriors of a whole clip, ``(ceil(N / 160), 40)`` float32, fed in 20 ms chunks."""
    encoder.reset()
    parts = [
        encoder.push(audio[i : i + CHUNK_SAMPLES]) for i in range(0, len(audio), CHUNK_SAMPLES)
    ]
    parts.append(encoder.flush())
    post = np.concatenate(parts)
    n = int(np.ceil(len(audio) / HOP_SAMPLES))
    if len(post) < n:
        post = np.concatenate([post, np.repeat(post[-1:], n - len(post), 0)])
    return post[:n]


def main() -> None:
    """Computes every missing (variant, clip) posterior file."""
    from lipstream.realtime.encoder import StreamingPhonemeEncoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join([*PITCH_CENTS, "chan"]))
    parser.add_argument("--out", type=Path, default=POSTERIOR_DIR)
    parser.add_argument("--dev-only", action="store_true", help="only the dev clips (evaluation)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    encoder = StreamingPhonemeEncoder()
    ids = split_ids(clip_ids())[1] if args.dev_only else clip_ids()
    variants = args.variants.split(",")
    pool = babble_pool() if any(v in CHANNEL_SEEDS for v in variants) else []
    for variant in variants:
        out_dir = args.out / variant
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, clip_id in enumerate(ids):
            path = out_dir / f"{clip_id}.npy"
            if path.exists():
                continue
            with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
                audio = data["audio"].astype(np.float32) / 32768.0
            heard = variant_audio(variant, clip_id, audio, pool)
            np.save(path, encode(encoder, heard).astype(np.float16))
            if variant in CHANNEL_SEEDS:
                np.save(out_dir / f"{clip_id}.levels.npy", hop_levels_db(heard).astype(np.float16))
            if i % 100 == 0:
                logger.info("posteriors %s %d/%d", variant, i + 1, len(ids))
        (out_dir / "DONE").write_text(f"{len(ids)} clips{' (dev only)' if args.dev_only else ''}\n")


if __name__ == "__main__":
    main()
