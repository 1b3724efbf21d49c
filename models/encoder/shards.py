"""Feature + label shards for training and dev, built with the runtime feature code.

Every labelled clip (aligned real speech, synthetic speech, LibriSpeech pseudo-labels) becomes
normalised log-mel frames (``lipstream.realtime.features``) and one phone index per 10 ms frame;
training clips also get augmented copies. Whole speakers are held out for dev.
Output: ``CORPUS_DIR/<split>_<set>.npz`` with ``feats`` (N, 40) float16, ``labels`` (N,) int8,
``starts`` (U + 1,) int64, ``ids`` (U,), and for dev sets ``audio`` + ``audio_starts`` (clean audio).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipstream.realtime.features import features_whole
from lipstream.realtime.phonemes import PHONE_TO_INDEX

from . import align, augment
from .audio_io import load_audio_16k
from .paths import ALIGN_DIR, CORPUS_DIR, DATA_DIR, SYNTH_DIR

logger = logging.getLogger(__name__)

SEED = 4321
FRAME_S = 0.01
LABEL_OFFSET_S = 0.005
"""Frame t is labelled with the phone at t * 10 ms + 5 ms (the middle of its hop)."""
DEV_VCTK_SPEAKERS = ("p228", "p233", "p254", "p273")
DEV_FSDD_SPEAKER = "theo"
DEV_GRID_EVERY = 20
"""Every 20th GRID s1 clip is dev (same speaker as train: reported separately)."""
N_BABBLE_CLIPS = 40
SPEED_PROB = 0.8
SPEED_RANGE = (0.85, 1.15)
"""Augmented training copies are resampled by a random factor first (speed + vocal-tract-length
perturbation: tempo, pitch and formants all scale with it)."""
LIBRI_FIRST_CLIPS = 100
"""The first 100 (sorted) LibriSpeech train clips form the ``libri`` shard (the from-scratch recipe's);
the other 151 form ``libri_more`` (added by the fine-tune recipe), so neither shard changes the other."""
LIBRI_MIN_AGREEMENT = 0.0
"""Confidence filter for LibriSpeech pseudo-labels: minimum allphone agreement (see align.py)."""


@dataclass(frozen=True)
class Clip:
    """One labelled utterance: where its audio and labels are, whose voice, and which split."""

    clip_set: str
    clip_id: str
    speaker: str
    split: str
    load: Callable[[], np.ndarray]
    labels: Path


def frame_labels(label_path: Path, n_frames: int, time_scale: float = 1.0) -> np.ndarray:
    """Phone index per frame, (n_frames,) int8, from a ``{"phones": [...]}`` file.

    ``time_scale``: the audio was sped up by this factor (``augment.speed``), so frame time t of the
    perturbed audio is time t * time_scale of the labels.
    """
    phones = json.loads(label_path.read_text())["phones"]
    times = (np.arange(n_frames) * FRAME_S + LABEL_OFFSET_S) * time_scale
    ends = np.array([p["end"] for p in phones])
    idx = np.minimum(np.searchsorted(ends, times, side="right"), len(phones) - 1)
    lookup = np.array([PHONE_TO_INDEX[p["phone"]] for p in phones], dtype=np.int8)
    return lookup[idx]


def _loader(path: Path) -> Callable[[], np.ndarray]:
    if path.suffix == ".npy":
        return lambda: np.load(path)
    return lambda: load_audio_16k(path)


def list_clips() -> list[Clip]:
    """Every labelled clip with its split."""
    clips = []
    for i, lab in enumerate(sorted((ALIGN_DIR / "grid").glob("*.json"))):
        split = "dev" if i % DEV_GRID_EVERY == 0 else "train"
        mp4 = DATA_DIR / "grid" / "s1" / f"{lab.stem}.mp4"
        clips.append(Clip("grid", lab.stem, "s1", split, _loader(mp4), lab))
    for lab in sorted((ALIGN_DIR / "vctk").glob("*.json")):
        spk = lab.stem.split("_")[0]
        split = "dev" if spk in DEV_VCTK_SPEAKERS else "train"
        clips.append(Clip("vctk", lab.stem, spk, split, _loader(DATA_DIR / "vctk" / f"{lab.stem}.flac"), lab))
    for lab in sorted((ALIGN_DIR / "fsdd").glob("*.json")):
        spk = lab.stem.split("_")[1]
        split = "dev" if spk == DEV_FSDD_SPEAKER else "train"
        clips.append(Clip("fsdd", lab.stem, spk, split, _loader(DATA_DIR / "fsdd" / f"{lab.stem}.ogg"), lab))
    synth_audio = {p.stem: p for p in SYNTH_DIR.glob("*/*.npy")}
    for lab in sorted((ALIGN_DIR / "synth").glob("*.json")):
        if lab.stem in synth_audio:
            voice = synth_audio[lab.stem].parent.name
            clips.append(Clip("synth", lab.stem, voice, "train", _loader(synth_audio[lab.stem]), lab))
    for k, ogg in enumerate(align.librispeech_clips(DATA_DIR)):
        lab = ALIGN_DIR / "librispeech" / f"{ogg.stem}.json"
        if not lab.exists() or json.loads(lab.read_text()).get("allphone_agreement", 1.0) < LIBRI_MIN_AGREEMENT:
            continue
        clip_set = "libri" if k < LIBRI_FIRST_CLIPS else "libri_more"
        clips.append(Clip(clip_set, lab.stem, lab.stem.split("-")[0], "train", _loader(ogg), lab))
    for lab in sorted((ALIGN_DIR / "libri_dev").glob("*.json")):
        ogg = DATA_DIR / "librispeech" / f"{lab.stem}.ogg"
        clips.append(Clip("libritest", lab.stem, lab.stem.split("-")[0], "dev", _loader(ogg), lab))
    return clips


def n_augmented(clip: Clip) -> int:
    """How many augmented copies a training clip gets (scarce multi-speaker sets get more)."""
    return {"vctk": 4, "grid": 1, "fsdd": 1, "synth": 1, "libri": 2, "libri_more": 2, "libritest": 1}[clip.clip_set]


def babble_pool() -> list[np.ndarray]:
    """Other speakers' speech for babble noise (LibriSpeech train clips; never the test-other dev clips)."""
    paths = align.librispeech_train_pool(DATA_DIR)[::8][:N_BABBLE_CLIPS]
    return [load_audio_16k(p) for p in paths]


def _write(path: Path, rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
    feats = np.concatenate([r[1] for r in rows]).astype(np.float16)
    labels = np.concatenate([r[2] for r in rows]).astype(np.int8)
    starts = np.cumsum([0] + [len(r[2]) for r in rows]).astype(np.int64)
    extra: dict[str, np.ndarray] = {}
    if rows[0][3] is not None:
        extra["audio"] = np.concatenate([r[3] for r in rows]).astype(np.float32)  # type: ignore[misc]
        extra["audio_starts"] = np.cumsum([0] + [len(r[3]) for r in rows]).astype(np.int64)  # type: ignore[arg-type]
    np.savez(path, feats=feats, labels=labels, starts=starts, ids=np.array([r[0] for r in rows]), **extra)
    logger.info("%s: %d utterances, %.1f min", path.name, len(rows), len(labels) / 6000)


def clip_variants(
    clips: list[Clip], pool: list[np.ndarray], set_index: int
) -> Iterator[tuple[Clip, int, np.ndarray, float]]:
    """(clip, variant index, audio, speed factor) of every clip of one set, clean copy first.

    The augmented copies are drawn from the set's seeded generator, so anything that walks a set
    this way (the shards here, ``sphinx_shards.py``) sees the very same audio.
    """
    rng = np.random.default_rng([SEED, set_index])
    for clip in clips:
        audio = clip.load()
        n_aug = n_augmented(clip) if clip.split == "train" else 1
        yield clip, 0, audio, 1.0
        for v in range(n_aug):
            factor = 1.0
            if clip.split == "train" and rng.random() < SPEED_PROB:
                factor = float(rng.uniform(*SPEED_RANGE))
            yield clip, v + 1, augment.random_chain(augment.speed(audio, factor), rng, pool), factor


def shard_key(clip: Clip, variant: int) -> str:
    """The shard a variant goes to: ``<split>_<set>``, with dev augmented copies in ``..._aug``."""
    return f"{clip.split}_{clip.clip_set}" + ("_aug" if clip.split == "dev" and variant > 0 else "")


def _build_set(clip_set: str, clips: list[Clip], pool: list[np.ndarray], set_index: int) -> list[str]:
    """Features + labels (+ augmented copies) for one source set; returns the shard names written."""
    groups: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]] = {}
    for clip, v, x, factor in clip_variants(clips, pool, set_index):
        feats = features_whole(x)
        labels = frame_labels(clip.labels, len(feats), factor)
        keep_audio = x if clip.split == "dev" else None
        groups.setdefault(shard_key(clip, v), []).append((f"{clip.clip_id}#{v}", feats, labels, keep_audio))
    for key, rows in groups.items():
        _write(CORPUS_DIR / f"{key}.npz", rows)
    return sorted(groups)


SET_ORDER = ("grid", "vctk", "fsdd", "synth", "libri", "libritest", "libri_more")
"""Build order; a set's index seeds its augmentation, so new sets go at the end."""


def build_all(sets: tuple[str, ...] = SET_ORDER) -> None:
    """Build every missing shard of ``sets`` (each set deterministic for SEED; delete a shard to rebuild it)."""
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    pool = babble_pool()
    clips = list_clips()
    written = []
    for index, clip_set in enumerate(SET_ORDER):
        if clip_set not in sets:
            continue
        mine = [c for c in clips if c.clip_set == clip_set]
        first = f"{mine[0].split}_{clip_set}" if mine else ""
        if not mine or (CORPUS_DIR / f"{first}.npz").exists():
            continue
        logger.info("building %s (%d clips)", clip_set, len(mine))
        written += _build_set(clip_set, mine, pool, index)
    (CORPUS_DIR / "DONE").write_text("\n".join(sorted(p.stem for p in CORPUS_DIR.glob("*.npz"))) + "\n")
