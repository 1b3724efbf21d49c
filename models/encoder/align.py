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
LIBRI_TEST_CLIPS_PER_SPEAKER = 10
"""test-other speakers have ten transcribed clips each in texts.tsv; they form the dev set."""
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


def libri_texts(data_dir: Path) -> dict[str, str]:
    """True transcripts in ``librispeech/texts.tsv`` (all 100 test-other clips and two train clips)."""
    out = {}
    for line in (data_dir / "librispeech" / "texts.tsv").read_text().splitlines():
        clip_id, _, text = line.partition("\t")
        if text:
            out[clip_id] = text
    return out


def libri_test_other_ids(data_dir: Path) -> set[str]:
    """The test-other dev clips: speakers with ten transcribed clips (never trained on)."""
    texts = libri_texts(data_dir)
    counts: dict[str, int] = {}
    for clip_id in texts:
        counts[clip_id.split("-")[0]] = counts.get(clip_id.split("-")[0], 0) + 1
    return {c for c in texts if counts[c.split("-")[0]] >= LIBRI_TEST_CLIPS_PER_SPEAKER}


def libri_dev_items(data_dir: Path) -> list[tuple[str, Path, str]]:
    """(clip_id, ogg, true text) of the test-other dev clips."""
    texts, dev = libri_texts(data_dir), libri_test_other_ids(data_dir)
    return [(c, data_dir / "librispeech" / f"{c}.ogg", texts[c]) for c in sorted(dev)]


def make_allphone_decoder() -> object:
    """Phone-loop decoder with the bundled phonetic LM (settings from the pocketsphinx docs).

    The baseline in ``evaluate.py`` and the pseudo-label confidence both use it.
    """
    import pocketsphinx

    return pocketsphinx.Decoder(
        samprate=16000, allphone=pocketsphinx.get_model_path("en-us/en-us-phone.lm.bin"),
        lw=2.0, pip=0.3, beam=1e-20, pbeam=1e-20, loglevel="ERROR",
    )  # fmt: skip


def allphone_agreement(allphone: object, audio: np.ndarray, spans: list[PhoneSpan]) -> float:
    """Share of speech frames where an allphone decode agrees with the aligned phone (label confidence)."""
    allphone.start_utt()  # type: ignore[attr-defined]
    allphone.process_raw(to_int16_bytes(audio), full_utt=True)  # type: ignore[attr-defined]
    allphone.end_utt()  # type: ignore[attr-defined]
    n = int(len(audio) / 16000.0 / FRAME_S)
    decoded = np.array([SIL] * n, dtype=object)
    for seg in allphone.seg():  # type: ignore[attr-defined]
        decoded[seg.start_frame : seg.end_frame + 1] = normalise_phone(seg.word)
    aligned = np.array([SIL] * n, dtype=object)
    for s in spans:
        aligned[int(round(s.start_s / FRAME_S)) : int(round(s.end_s / FRAME_S))] = s.phone
    speech = aligned != SIL
    return float(np.mean(decoded[speech] == aligned[speech])) if speech.any() else 0.0


def _pseudo_label_worker(args: tuple[list[Path], Path, dict[str, str]]) -> int:
    """Label one share of the clips (own decoders; pocketsphinx is not thread-safe)."""
    import pocketsphinx

    clips, out_dir, texts = args
    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="ERROR")
    allphone = make_allphone_decoder()
    aligner, written = Aligner(), 0
    for i, path in enumerate(clips):
        target = out_dir / f"{path.stem}.json"
        if target.exists() or (out_dir / f"{path.stem}.failed").exists():
            written += target.exists()
            continue
        audio = load_audio_16k(path)
        source = "text"
        if path.stem in texts:
            words = text_to_words(texts[path.stem])
        else:
            source = "lm"
            decoder.start_utt()
            decoder.process_raw(to_int16_bytes(audio), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            words = hyp.hypstr.split() if hyp else []
        known = [w for w in words if aligner.known(w)]
        try:
            if len(known) < 3:
                raise RuntimeError(f"{len(known)} known words")
            spans = aligner.align(audio, known)
        except RuntimeError as exc:
            logger.warning("%s: no labels (%s)", path.stem, exc)
            (out_dir / f"{path.stem}.failed").write_text(str(exc))
            continue
        conf = allphone_agreement(allphone, audio, spans)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"phones": [s.as_json() for s in spans], "source": source,
                                   "allphone_agreement": round(conf, 4), "words": known}))  # fmt: skip
        tmp.replace(target)
        written += 1
        if i % 20 == 0:
            logger.info("librispeech %s %d/%d", path.stem, i, len(clips))
    return written


def pseudo_label_librispeech(
    data_dir: Path, out_dir: Path, workers: int = 2, limit: int | None = None
) -> int:
    """Labels for the LibriSpeech clips outside the test-other dev set (the first ``limit``; all).

    The two clips with a true transcript are aligned to it. The others have no text: decode words with the
    bundled LM, then force-align that hypothesis (noisy: word errors). Each label file records its
    ``allphone_agreement`` (share of speech frames where an independent allphone decode agrees), which
    ``shards.py`` uses as a confidence filter. ``workers`` processes share the clips.
    """
    import multiprocessing as mp

    out_dir.mkdir(parents=True, exist_ok=True)
    clips = librispeech_clips(data_dir)[:limit]
    texts = libri_texts(data_dir)
    shares = [(clips[k::workers], out_dir, texts) for k in range(workers)]
    if workers == 1:
        written = _pseudo_label_worker(shares[0])
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            written = sum(pool.map(_pseudo_label_worker, shares))
    (out_dir / "DONE").write_text(f"{written} of {len(clips)} clips\n")
    return written


def librispeech_clips(data_dir: Path) -> list[Path]:
    """The LibriSpeech clips the training corpus may use: never the test-other dev clips."""
    return librispeech_train_pool(data_dir)


def librispeech_train_pool(data_dir: Path) -> list[Path]:
    """Every LibriSpeech clip outside the test-other dev set (251: 249 unlabelled, 2 with text)."""
    dev = libri_test_other_ids(data_dir)
    return [p for p in sorted((data_dir / "librispeech").glob("*.ogg")) if p.stem not in dev]
