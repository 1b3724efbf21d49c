"""Phone segments from the streaming encoder, for ``lipstream phonemes`` and the evaluations.

``phoneme_segments`` runs the streaming encoder exactly as the live pipeline does (20 ms chunks) and
turns its 100 Hz posteriors into labelled segments; ``phoneme_posteriors`` returns the frames. The
phone tables live in ``realtime/phoneset.py`` and are re-exported here for older imports.
"""

from __future__ import annotations

import numpy as np

from .phoneset import (
    PHONE_TO_INDEX,
    PHONE_TO_VISEME,
    PHONE_TO_VISEME_INDEX,
    PHONES,
    SIL,
    VISEMES,
    normalise_phone,
)

__all__ = [
    "FRAME_S",
    "LIVE_CHUNK_SAMPLES",
    "PHONES",
    "PHONE_TO_INDEX",
    "PHONE_TO_VISEME",
    "PHONE_TO_VISEME_INDEX",
    "SIL",
    "VISEMES",
    "normalise_phone",
    "phoneme_posteriors",
    "phoneme_segments",
    "segments_from_posteriors",
]

LIVE_CHUNK_SAMPLES = 320
"""20 ms: the chunk size the live pipeline feeds, used offline too so both give identical output."""
FRAME_S = 0.01


def phoneme_posteriors(audio_16k: np.ndarray, model_path: str | None = None) -> np.ndarray:
    """Per-frame posteriors of the streaming encoder fed in 20 ms chunks, then flushed.

    Args:
        audio_16k: mono float32 (n,) at 16 kHz, full scale +-1.
        model_path: an encoder .onnx; default the shipped one.

    Returns:
        float32 (n // 160, len(PHONES)); row t covers [t * 10 ms, (t + 1) * 10 ms), columns in
        ``PHONES`` order.
    """
    from pathlib import Path

    from .encoder import StreamingPhonemeEncoder

    audio = _check_audio(audio_16k)
    enc = StreamingPhonemeEncoder(Path(model_path) if model_path else None)
    rows = [
        enc.push(audio[i : i + LIVE_CHUNK_SAMPLES])
        for i in range(0, audio.size, LIVE_CHUNK_SAMPLES)
    ]
    rows.append(enc.flush())
    return np.concatenate(rows).astype(np.float32)


def segments_from_posteriors(posteriors: np.ndarray) -> list[dict[str, object]]:
    """Arg-max phone per frame, runs merged into ``{"phone", "start", "end"}`` segments (s)."""
    best = posteriors.argmax(axis=1) if posteriors.size else np.zeros(0, np.int64)
    segments: list[dict[str, object]] = []
    start = 0
    for t in range(1, best.size + 1):
        if t == best.size or best[t] != best[start]:
            segments.append({"phone": PHONES[int(best[start])], "start": round(start * FRAME_S, 3),
                             "end": round(t * FRAME_S, 3)})  # fmt: skip
            start = t
    return segments


def phoneme_segments(
    audio_16k: np.ndarray, include_posteriors: bool = False, model_path: str | None = None
) -> dict[str, object]:
    """What ``lipstream phonemes WAV --json [--posteriors]`` prints, computed as the live path does.

    Returns:
        ``{"lookahead_ms": L, "segments": [{"phone": "AH", "start": 0.12, "end": 0.18}, ...]}``;
        with ``include_posteriors`` also ``"frame_rate_hz": 100``, ``"phones": [...]`` (column
        order) and ``"posteriors"``: one list of len(PHONES) floats (4 decimals) per 10 ms frame.
    """
    from pathlib import Path

    from .encoder import default_model_path, load_session

    _, contract = load_session(str(Path(model_path) if model_path else default_model_path()))
    post = phoneme_posteriors(audio_16k, model_path)
    out: dict[str, object] = {
        "lookahead_ms": contract.lookahead_ms,
        "segments": segments_from_posteriors(post),
    }
    if include_posteriors:
        out["frame_rate_hz"] = contract.frame_rate_hz
        out["phones"] = list(PHONES)
        out["posteriors"] = np.round(post, 4).tolist()
    return out


def _check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise ValueError("expected a mono (n,) numpy array of 16 kHz samples")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"expected float samples in [-1, 1], got dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)
