"""Dev-speaker evaluation: the shipped ONNX encoder (streamed in 20 ms chunks) vs pocketsphinx allphone.

    python -m lipstream.models.encoder.evaluate [--model encoder.onnx] [--skip-pocketsphinx]

Both systems get the same dev audio (held-out VCTK speakers, the held-out FSDD speaker, and the dev
GRID s1 clips, and the LibriSpeech test-other clips that align to their true transcripts; clean and one
augmented copy) and are scored per 10 ms frame against the pocketsphinx
forced alignments. Writes ``eval.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from lipstream.realtime.phonemes import PHONE_TO_INDEX, normalise_phone, phoneme_posteriors

from .align import make_allphone_decoder
from .audio_io import to_int16_bytes
from .metrics import class_recall, frame_metrics
from .paths import CORPUS_DIR

logger = logging.getLogger(__name__)

DEV_SETS = ("dev_libritest", "dev_vctk", "dev_fsdd", "dev_grid", "dev_libritest_aug", "dev_vctk_aug", "dev_fsdd_aug",
            "dev_grid_aug")  # fmt: skip
RECALL_PHONES = ("P", "B", "M", "IH", "AH", "EH", "AE", "AA", "AO", "OW", "UW", "IY", "EY", "AY", "ER", "UH")
"""Per-class recall is reported for the mouth-closing phones and the vowels."""
HELD_OUT_SPEAKER_SETS = ("dev_vctk", "dev_fsdd")


def dev_utterances(name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(audio float32, frame labels int) per utterance of a dev shard."""
    with np.load(CORPUS_DIR / f"{name}.npz") as z:
        a, s, lab, ls = z["audio"], z["audio_starts"], z["labels"], z["starts"]
    return [(a[s[i] : s[i + 1]], lab[ls[i] : ls[i + 1]]) for i in range(len(s) - 1)]


def allphone_frames(decoder: object, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """pocketsphinx allphone decode of a whole utterance -> phone index per 10 ms frame."""
    decoder.start_utt()  # type: ignore[attr-defined]
    decoder.process_raw(to_int16_bytes(audio), full_utt=True)  # type: ignore[attr-defined]
    decoder.end_utt()  # type: ignore[attr-defined]
    out = np.full(n_frames, PHONE_TO_INDEX["SIL"], dtype=np.int64)
    for seg in decoder.seg():  # type: ignore[attr-defined]
        out[seg.start_frame : seg.end_frame + 1] = PHONE_TO_INDEX[normalise_phone(seg.word)]
    return out


def pocketsphinx_frames(name: str, utterances: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Allphone frame labels per utterance, cached under CORPUS_DIR (they do not depend on our model)."""
    cache = CORPUS_DIR / f"{name}.allphone.npz"
    if cache.exists():
        with np.load(cache) as z:
            return [z[f"u{i}"] for i in range(len(utterances))]
    decoder = make_allphone_decoder()
    frames = [allphone_frames(decoder, audio, len(labels)) for audio, labels in utterances]
    np.savez(cache, **{f"u{i}": f for i, f in enumerate(frames)})
    return frames


def evaluate(
    model: str | None, with_pocketsphinx: bool, sets: tuple[str, ...] = DEV_SETS
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per dev set, per system; plus the pooled held-out-speaker sets."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    pooled: dict[str, list[np.ndarray]] = {"ref": [], "encoder": [], "pocketsphinx": []}
    for name in sets:
        if not (CORPUS_DIR / f"{name}.npz").exists():
            continue
        utterances = dev_utterances(name)
        ref, enc = [], []
        for audio, labels in utterances:
            post = phoneme_posteriors(audio, model)[: len(labels)]
            ref.append(labels[: len(post)])
            enc.append(post.argmax(1))
        ps = pocketsphinx_frames(name, utterances) if with_pocketsphinx else []
        ps = [p[: len(r)] for p, r in zip(ps, ref)]
        ref_all = np.concatenate(ref)
        results[name] = {"encoder": frame_metrics(np.concatenate(enc), ref_all)}
        results[name]["encoder"]["recall"] = class_recall(np.concatenate(enc), ref_all, RECALL_PHONES)
        if with_pocketsphinx:
            results[name]["pocketsphinx_allphone"] = frame_metrics(np.concatenate(ps), ref_all)
            results[name]["pocketsphinx_allphone"]["recall"] = class_recall(np.concatenate(ps), ref_all, RECALL_PHONES)
        if name in HELD_OUT_SPEAKER_SETS:
            pooled["ref"] += ref
            pooled["encoder"] += enc
            pooled["pocketsphinx"] += ps
        logger.info("%s %s", name, json.dumps(results[name]))
    if not pooled["ref"]:
        return results
    results["held_out_speakers_clean"] = {
        "encoder": frame_metrics(np.concatenate(pooled["encoder"]), np.concatenate(pooled["ref"]))
    }
    if with_pocketsphinx:
        results["held_out_speakers_clean"]["pocketsphinx_allphone"] = frame_metrics(
            np.concatenate(pooled["pocketsphinx"]), np.concatenate(pooled["ref"])
        )
    return results


def main(argv: list[str] | None = None) -> None:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--skip-pocketsphinx", action="store_true")
    p.add_argument("--sets", nargs="*", default=list(DEV_SETS), choices=DEV_SETS)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("eval.json"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    res = evaluate(a.model, not a.skip_pocketsphinx, tuple(a.sets))
    a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
