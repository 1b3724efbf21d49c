"""Self-training mask for the LibriSpeech pseudo-labels: keep the frames the encoder accepts.

    python -m lipstream.models.encoder.selftrain --teacher CKPT

The pseudo-labels are pocketsphinx alignments of an LM decode, so they carry word errors. A trained
encoder (the teacher) is run over every utterance of the ``train_libri`` and ``train_libri_more``
shards (each augmented copy on its own features, streamed from the start, look-ahead applied); a
frame's label is kept when the teacher gives it at least ``min_prob`` posterior, otherwise the frame
is ignored by the loss (``train.py --self-train``). Writes ``CORPUS_DIR/train_<set>.keep.npz``
(``keep`` (N,) bool, one per shard frame, with the teacher's path and ``min_prob``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from .model import EncoderConfig, StreamingEncoder
from .paths import CORPUS_DIR
from .train import LIBRI_SETS

logger = logging.getLogger(__name__)

MIN_PROB = 0.1
"""A pseudo-label the teacher gives less than this posterior is dropped from the loss."""


def keep_path(clip_set: str) -> Path:
    """Where the keep-mask of a training shard lives."""
    return CORPUS_DIR / f"train_{clip_set}.keep.npz"


@torch.no_grad()
def label_posteriors(model: StreamingEncoder, feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The teacher's posterior of each frame's own label, (N,) float32, for one utterance."""
    L = model.cfg.lookahead_frames
    f = torch.from_numpy(feats.astype(np.float32))[None]
    f = torch.cat([f, torch.zeros(1, L, f.shape[2])], dim=1)
    logits = model(f, *model.initial_state(1))[0][0, L:]
    post = torch.softmax(logits, dim=-1).numpy()
    return post[np.arange(len(labels)), labels.astype(np.int64)]


def build_mask(teacher: Path, clip_set: str = "libri", min_prob: float = MIN_PROB) -> np.ndarray:
    """Keep-mask for ``train_<clip_set>.npz`` from ``teacher`` (a ``train.py`` checkpoint)."""
    blob = torch.load(teacher, map_location="cpu")
    model = StreamingEncoder(EncoderConfig(**blob["cfg"]))
    model.load_state_dict(blob["state"])
    model.eval()
    with np.load(CORPUS_DIR / f"train_{clip_set}.npz") as z:
        feats, labels, starts = z["feats"], z["labels"], z["starts"]
    keep = np.ones(len(labels), dtype=bool)
    for i in range(len(starts) - 1):
        a, b = int(starts[i]), int(starts[i + 1])
        keep[a:b] = label_posteriors(model, feats[a:b], labels[a:b]) >= min_prob
    meta = {"teacher": np.array(str(teacher)), "min_prob": np.array(min_prob)}
    np.savez(keep_path(clip_set), keep=keep, **meta)
    logger.info("%s: kept %.3f of %d frames", clip_set, keep.mean(), len(keep))
    return keep


def main(argv: list[str] | None = None) -> None:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--min-prob", type=float, default=MIN_PROB)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    for clip_set in LIBRI_SETS:
        if (CORPUS_DIR / f"train_{clip_set}.npz").exists():
            build_mask(a.teacher, clip_set, a.min_prob)


if __name__ == "__main__":
    main()
