"""Frame metrics shared by training, the encoder eval and the pocketsphinx baseline (numpy only)."""

from __future__ import annotations

import numpy as np

from lipstream.realtime.phonemes import PHONE_TO_INDEX, PHONE_TO_VISEME_INDEX

BILABIALS = np.array([PHONE_TO_INDEX[p] for p in ("P", "B", "M")])


def frame_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """Phone / viseme frame accuracy and bilabial recall for (N,) phone-index arrays.

    Bilabial recall: of frames labelled P/B/M, the share predicted as P/B/M (the mouth closes);
    precision the converse. None where undefined.
    """
    pred, ref = pred.astype(np.int64), ref.astype(np.int64)
    bil = np.isin(ref, BILABIALS)
    return {
        "frames": int(ref.size),
        "phone_acc": float(np.mean(pred == ref)),
        "viseme_acc": float(np.mean(PHONE_TO_VISEME_INDEX[pred] == PHONE_TO_VISEME_INDEX[ref])),
        "bilabial_recall": float(np.mean(np.isin(pred[bil], BILABIALS))) if bil.any() else None,
        "bilabial_precision": float(np.mean(np.isin(ref[np.isin(pred, BILABIALS)], BILABIALS)))
        if np.isin(pred, BILABIALS).any()
        else None,
    }


def class_recall(
    pred: np.ndarray, ref: np.ndarray, phones: tuple[str, ...]
) -> dict[str, float | None]:
    """Per-phone frame recall: of frames labelled ``phone``, the share predicted as that phone."""
    out: dict[str, float | None] = {}
    for phone in phones:
        mask = ref == PHONE_TO_INDEX[phone]
        hits = pred[mask] == PHONE_TO_INDEX[phone]
        out[phone] = round(float(np.mean(hits)), 4) if mask.any() else None
    return out
