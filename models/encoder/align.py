"""Forced alignment of known texts with pocketsphinx 5 (bundled en-US model and cmudict).

Labels for real speech (GRID s1, VCTK, FSDD) come from here. Output per clip is a JSON file
``{"phones": [{"phone": "B", "start": 0.0, "end": 0.05}, ...]}`` in seconds, ARPAbet without stress,
silence as ``SIL`` (the bundled model has no closure units, so stops already include their closures).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_io import load_audio_16k, to_int16_bytes
from .phoneset import SIL, normalise_phone

logger = logging.getLogger(__name__)

FRAME_S = 0.01
"""pocketsphinx frame period (10 ms)."""
GRID_TIME_UNIT_S = 1.0 / 25_000
"""GRID .align files count time in 1/25000 s."""
GRID_EDGE_SLACK_S = 0.03
"""How far a phone may start before GRID's own first-word onset (its aligner is HTK, ours is not)."""
LIBRI_MAX_CLIPS = 25
"""LibriSpeech clips pseudo-labelled (first ones in sorted order): LM decoding is the slowest corpus
stage (~0.3 x real time on one core), so the corpus uses a fixed prefix."""
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class PhoneSpan:
    """One aligned phone; times in seconds from the start of the clip."""

    phone: str
    start_s: float
    end_s: float

    def as_json(self) -> dict[str, object]:
        """The on-disk form used by all label consumers."""
        return {"phone": self.phone, "start": round(self.start_s, 3), "end": round(self.end_s, 3)}


class Aligner:
    """Two-pass pocketsphinx aligner (word alignment, then phone/state alignment). Not thread-safe."""

    def __init__(self) -> None:
        import pocketsphinx  # train extra; imported here so the module imports without it

        self._decoder = pocketsphinx.Decoder(samprate=16000, bestpath=False, loglevel="ERROR")

    def known(self, word: str) -> bool:
        """True if ``word`` is in the bundled cmudict."""
        return self._decoder.lookup_word(word) is not None

    def pronunciation(self, word: str) -> list[str]:
        """Phones of ``word`` from the dictionary (stress-free ARPAbet)."""
        pron = self._decoder.lookup_word(word)
        if pron is None:
            raise KeyError(word)
        return [normalise_phone(p) for p in pron.split()]

    def align(self, audio: np.ndarray, words: list[str]) -> list[PhoneSpan]:
        """Align ``words`` to ``audio`` (float32 16 kHz); raises RuntimeError when it cannot."""
        pcm = to_int16_bytes(audio)
        self._decoder.set_align_text("<sil> " + " ".join(words) + " <sil>")
        self._run(pcm)
        self._decoder.set_alignment()
        self._run(pcm)
        alignment = self._decoder.get_alignment()
        if alignment is None:
            raise RuntimeError("no alignment")
        spans = [
            PhoneSpan(normalise_phone(p.name), p.start * FRAME_S, (p.start + p.duration) * FRAME_S)
            for p in alignment.phones()
        ]
        if not spans:
            raise RuntimeError("empty alignment")
        return merge_spans(spans, len(audio) / 16000.0)

    def _run(self, pcm: bytes) -> None:
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()


def merge_spans(spans: list[PhoneSpan], duration_s: float) -> list[PhoneSpan]:
    """Sort, fill gaps with SIL, merge adjacent SILs and cover [0, duration_s]."""
    out: list[PhoneSpan] = []
    t = 0.0
    for s in sorted(spans, key=lambda x: x.start_s):
        start, end = max(s.start_s, t), min(s.end_s, duration_s)
        if end <= start + 1e-6:
            continue
        if start > t + 1e-6:
            out.append(PhoneSpan(SIL, t, start))
        out.append(PhoneSpan(s.phone, start, end))
        t = end
    if duration_s > t + 1e-6:
        out.append(PhoneSpan(SIL, t, duration_s))
    merged: list[PhoneSpan] = []
    for s in out:
        if merged and s.phone == SIL and merged[-1].phone == SIL:
            merged[-1] = PhoneSpan(SIL, merged[-1].start_s, s.end_s)
        else:
            merged.append(s)
    return merged


def clamp_to_speech(spans: list[PhoneSpan], onset_s: float, offset_s: float) -> list[PhoneSpan]:
    """Make everything outside GRID's speech interval SIL (pocketsphinx stretches edge phones)."""
    lo, hi = onset_s - GRID_EDGE_SLACK_S, offset_s + GRID_EDGE_SLACK_S
    clipped = []
    for s in spans:
        start, end = max(s.start_s, lo), min(s.end_s, hi)
        if s.phone != SIL and end > start:
            clipped.append(PhoneSpan(s.phone, start, end))
    return merge_spans(clipped, spans[-1].end_s)


def even_split(words: list[tuple[str, float, float]], aligner: Aligner, dur: float) -> list[PhoneSpan]:
    """Fallback labels: each word's dictionary phones spread evenly over its known span."""
    spans = []
    for word, start, end in words:
        phones = aligner.pronunciation(word)
        step = (end - start) / len(phones)
        spans += [PhoneSpan(p, start + i * step, start + (i + 1) * step) for i, p in enumerate(phones)]
    return merge_spans(spans, dur)


def read_grid_align(path: Path) -> list[tuple[str, float, float]]:
    """GRID word timings (word, start_s, end_s), silences and short pauses removed."""
    words = []
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[2] not in ("sil", "sp"):
            words.append((parts[2], int(parts[0]) * GRID_TIME_UNIT_S, int(parts[1]) * GRID_TIME_UNIT_S))
    return words


def write_json(spans: list[PhoneSpan], path: Path) -> None:
    """Atomically write one clip's labels."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"phones": [s.as_json() for s in spans]}))
    tmp.replace(path)


def align_grid(data_dir: Path, out_dir: Path) -> int:
    """Align every GRID s1 clip; writes ``<clip_id>.json`` and finally ``DONE``. Returns #fallbacks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aligner, fallbacks = Aligner(), 0
    clips = sorted((data_dir / "grid" / "s1").glob("*.mp4"))
    for i, mp4 in enumerate(clips):
        target = out_dir / f"{mp4.stem}.json"
        if target.exists():
            continue
        words = read_grid_align(data_dir / "grid" / "align" / f"{mp4.stem}.align")
        audio = load_audio_16k(mp4)
        dur = len(audio) / 16000.0
        try:
            spans = aligner.align(audio, [w for w, _, _ in words])
            spans = clamp_to_speech(spans, words[0][1], words[-1][2])
        except (RuntimeError, KeyError) as exc:
            logger.warning("grid %s: alignment failed (%s); even split of GRID words", mp4.stem, exc)
            spans, fallbacks = even_split(words, aligner, dur), fallbacks + 1
        write_json(spans, target)
        if i % 100 == 0:
            logger.info("grid %d/%d", i, len(clips))
    (out_dir / "DONE").write_text(f"{len(clips)} clips, {fallbacks} even-split fallbacks\n")
    return fallbacks


def text_to_words(text: str) -> list[str]:
    """Lower-case, strip punctuation (keep apostrophes inside words)."""
    return [w.strip("'") for w in re.sub(r"[^a-z' ]+", " ", text.lower()).split() if w.strip("'")]


def align_texts(items: list[tuple[str, Path, str]], out_dir: Path) -> int:
    """Align (clip_id, audio path, text) items; skips texts with out-of-dictionary words."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aligner, written = Aligner(), 0
    for clip_id, path, text in items:
        target = out_dir / f"{clip_id}.json"
        if target.exists():
            written += 1
            continue
        words = text_to_words(text)
        missing = [w for w in words if not aligner.known(w)]
        if missing or not words:
            logger.warning("%s: skipped, not in dictionary: %s", clip_id, missing)
            continue
        try:
            spans = aligner.align(load_audio_16k(path), words)
        except RuntimeError as exc:
            logger.warning("%s: alignment failed (%s)", clip_id, exc)
            continue
        write_json(spans, target)
        written += 1
    (out_dir / "DONE").write_text(f"{written} of {len(items)} clips\n")
    return written


def vctk_items(data_dir: Path) -> list[tuple[str, Path, str]]:
    """(clip_id, flac, text) for every VCTK utterance with a text."""
    items = []
    for line in (data_dir / "vctk" / "texts.tsv").read_text().splitlines():
        clip_id, _, text = line.partition("\t")
        path = data_dir / "vctk" / f"{clip_id}.flac"
        if path.exists():
            items.append((clip_id, path, text))
    return items


def fsdd_items(data_dir: Path) -> list[tuple[str, Path, str]]:
    """(clip_id, ogg, digit word) for every FSDD recording."""
    return [
        (p.stem, p, DIGIT_WORDS[int(p.stem.split("_")[0])])
        for p in sorted((data_dir / "fsdd").glob("*.ogg"))
    ]


def pseudo_label_librispeech(data_dir: Path, out_dir: Path) -> int:
    """LibriSpeech has no texts: decode words with the bundled LM, then force-align that hypothesis.

    The labels are noisy (word errors), but bring 261 more speakers and a WebRTC-like Opus channel.
    """
    import pocketsphinx

    out_dir.mkdir(parents=True, exist_ok=True)
    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="ERROR")
    aligner, written = Aligner(), 0
    clips = librispeech_clips(data_dir)
    for i, path in enumerate(clips):
        target = out_dir / f"{path.stem}.json"
        if target.exists():
            written += 1
            continue
        audio = load_audio_16k(path)
        decoder.start_utt()
        decoder.process_raw(to_int16_bytes(audio), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        words = [w for w in (hyp.hypstr.split() if hyp else []) if aligner.known(w)]
        if len(words) < 3:
            continue
        try:
            write_json(aligner.align(audio, words), target)
            written += 1
        except RuntimeError as exc:
            logger.warning("%s: alignment failed (%s)", path.stem, exc)
        if i % 50 == 0:
            logger.info("librispeech %d/%d", i, len(clips))
    (out_dir / "DONE").write_text(f"{written} of {len(clips)} clips\n")
    return written


def librispeech_clips(data_dir: Path) -> list[Path]:
    """The LibriSpeech clips the corpus uses (fixed sorted prefix)."""
    return sorted((data_dir / "librispeech").glob("*.ogg"))[:LIBRI_MAX_CLIPS]
