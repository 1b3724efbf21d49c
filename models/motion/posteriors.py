"""Streaming-encoder posteriors of the GRID s1 audio, for fine-tuning the motion model.

Besides the original audio, each clip is pitch- and formant-shifted with sox (``pitch`` keeps the
duration, so the video targets stay aligned): the encoder's posteriors on those versions look more
like its posteriors on other speakers, which keeps the motion model from trusting s1's exact output.

    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.posteriors
    python -m lipstream.models.motion.posteriors --variants down400,up700 --dev-only

The last two variants are never trained on: shifts outside the training ones, on the dev clips only,
stand in for voices the motion model has not heard (``evaluate --source up700``).

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
from pathlib import Path

import numpy as np

from .dataset import HOP_SAMPLES, POSTERIOR_DIR, SAMPLE_RATE_HZ, clip_ids, split_ids
from .landmarks import LANDMARK_DIR

logger = logging.getLogger(__name__)

PITCH_CENTS: dict[str, int] = {"orig": 0, "down200": -200, "up250": 250, "up450": 450}
"""Training variants: sox ``pitch`` shifts in cents (pitch and formants together, duration kept)."""
HELD_OUT_CENTS: dict[str, int] = {"down400": -400, "up700": 700}
"""Evaluation-only variants (``--dev-only``): voices further from s1 than any training variant."""
CHUNK_SAMPLES = 320  # 20 ms, as the server feeds the pipeline


def pitch_shift(audio: np.ndarray, cents: int) -> np.ndarray:
    """``(N,)`` float32 16 kHz audio shifted by ``cents`` with sox, same length."""
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
    parser.add_argument("--variants", default=",".join(PITCH_CENTS))
    parser.add_argument("--out", type=Path, default=POSTERIOR_DIR)
    parser.add_argument("--dev-only", action="store_true", help="only the dev clips (evaluation)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    encoder = StreamingPhonemeEncoder()
    ids = split_ids(clip_ids())[1] if args.dev_only else clip_ids()
    cents = {**PITCH_CENTS, **HELD_OUT_CENTS}
    for variant in args.variants.split(","):
        out_dir = args.out / variant
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, clip_id in enumerate(ids):
            path = out_dir / f"{clip_id}.npy"
            if path.exists():
                continue
            with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
                audio = data["audio"].astype(np.float32) / 32768.0
            post = encode(encoder, pitch_shift(audio, cents[variant]))
            np.save(path, post.astype(np.float16))
            if i % 100 == 0:
                logger.info("posteriors %s %d/%d", variant, i + 1, len(ids))
        (out_dir / "DONE").write_text(f"{len(ids)} clips{' (dev only)' if args.dev_only else ''}\n")


if __name__ == "__main__":
    main()
