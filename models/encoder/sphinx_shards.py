"""Sphinx cepstral frames beside every training shard, so the encoder can train on the GMM layer.

    python -m lipstream.models.encoder.sphinx_shards [--sets vctk libri ...]

The log-mel shards keep features only, not audio, so this walks each set again with the very
same seeded augmentation (``shards.clip_variants``) and writes ``CORPUS_DIR/<shard>.sphinx.npz``:
``feats`` (N, 39) float16 from ``realtime.sphinx_mfcc`` (already delayed by its 3 frames, in step
with the log-mel rows), and ``ids``. Each utterance is checked against the log-mel shard (same
id, same frame count, and for the clean and first augmented copies the recomputed log-mels equal),
so a drifted replay fails instead of silently misaligning. Dev shards carry their audio, so theirs
are computed from it directly.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from lipstream.realtime.features import features_whole
from lipstream.realtime.sphinx_mfcc import sphinx_features_whole

from .paths import CORPUS_DIR
from .shards import SET_ORDER, babble_pool, clip_variants, list_clips, shard_key

logger = logging.getLogger(__name__)

TRAIN_SETS = ("libri_more", "libri", "vctk", "grid", "fsdd", "synth")
"""Most-weighted first (the fine-tune's set weights), so a stopped run has the useful ones."""
DEV_SHARDS = ("dev_libritest", "dev_vctk", "dev_fsdd", "dev_grid")
MEL_TOLERANCE = 0.05
"""float16 storage of the log-mel shard rounds values of a few units by ~1e-3."""


def sphinx_path(shard: str) -> object:
    """Where the Sphinx frames of ``<shard>.npz`` live."""
    return CORPUS_DIR / f"{shard}.sphinx.npz"


def build_train_set(clip_set: str, pool: list[np.ndarray]) -> None:
    """Replay one set's augmentation and write ``train_<set>.sphinx.npz``."""
    shard = f"train_{clip_set}"
    with np.load(CORPUS_DIR / f"{shard}.npz") as z:
        ids, starts, mel = list(z["ids"]), z["starts"], z["feats"]
    clips = [c for c in list_clips() if c.clip_set == clip_set]
    rows: list[np.ndarray] = []
    for clip, v, audio, _ in clip_variants(clips, pool, SET_ORDER.index(clip_set)):
        if shard_key(clip, v) != shard:
            continue
        i = len(rows)
        if ids[i] != f"{clip.clip_id}#{v}":
            raise ValueError(f"{shard}: row {i} is {ids[i]}, replay gave {clip.clip_id}#{v}")
        feats = sphinx_features_whole(audio)
        n = int(starts[i + 1] - starts[i])
        if len(feats) != n:
            raise ValueError(f"{shard}: {ids[i]} has {n} frames, replay {len(feats)}")
        if (
            v <= 1
        ):  # the clean copy and the first augmented one: the replayed audio must be identical
            err = float(np.abs(features_whole(audio) - mel[starts[i] : starts[i + 1]]).max())
            if err > MEL_TOLERANCE:
                raise ValueError(f"{shard}: {ids[i]} log-mels differ by {err:.3f}: replay drifted")
        rows.append(feats.astype(np.float16))
    if len(rows) != len(ids):
        raise ValueError(f"{shard}: replay gave {len(rows)} of {len(ids)} utterances")
    np.savez(sphinx_path(shard), feats=np.concatenate(rows), ids=np.array(ids))
    logger.info("%s: %d utterances", sphinx_path(shard), len(rows))


def build_dev(shard: str) -> None:
    """Sphinx frames of a dev shard from the audio it carries."""
    with np.load(CORPUS_DIR / f"{shard}.npz") as z:
        audio, a_starts, starts, ids = z["audio"], z["audio_starts"], z["starts"], z["ids"]
    rows = []
    for i in range(len(ids)):
        f = sphinx_features_whole(audio[a_starts[i] : a_starts[i + 1]])
        rows.append(f[: starts[i + 1] - starts[i]].astype(np.float16))
        if len(rows[-1]) != starts[i + 1] - starts[i]:
            raise ValueError(f"{shard}: {ids[i]} is shorter than its labels")
    np.savez(sphinx_path(shard), feats=np.concatenate(rows), ids=ids)
    logger.info("%s: %d utterances", sphinx_path(shard), len(rows))


def main(argv: list[str] | None = None) -> None:
    """CLI entry: build the missing Sphinx shards (dev ones first: they take seconds)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="*", default=list(TRAIN_SETS), choices=TRAIN_SETS)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for shard in DEV_SHARDS:
        if (CORPUS_DIR / f"{shard}.npz").exists() and not sphinx_path(shard).exists():
            build_dev(shard)
    pool = babble_pool()
    for clip_set in a.sets:
        if not sphinx_path(f"train_{clip_set}").exists():
            build_train_set(clip_set, pool)


if __name__ == "__main__":
    main()
