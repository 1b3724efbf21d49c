"""Does an unheard voice make the learned mouth late? Posteriors against the true phones.

    OMP_NUM_THREADS=1 python bench/posterior_lag.py [--clips 30] [--motion motion.onnx]
        [--out bench/results/posterior_lag.json]

``bench/voice_lag.py`` times the mouth against the voice's loudness, and finds it later on VCTK
and LibriSpeech than on GRID s1. Loudness leads or trails the lips differently from voice to
voice, so that measure alone cannot say whether the encoder is at fault. This one holds the voice
fixed and swaps only the motion model's phone input: for each dev utterance that has a forced
alignment (the encoder's dev shards: GRID s1 dev, VCTK dev speakers, LibriSpeech test-other), the
shipped motion model runs once on the streaming encoder's posteriors and once on the one-hot true
phones, with the same audio levels, at every 10 ms hop. The reported lag is the shift (10 ms steps
within +-120 ms, refined by a parabola; + = posteriors later) of best correlation between the two
openings, and r is that best correlation: how far the encoder's timing and content on this voice
move the mouth away from where the true phones put it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from lipstream.models.encoder.evaluate import dev_utterances
from lipstream.models.motion.dataset import SILENCE_DB, hop_levels_db, sil_row
from lipstream.realtime.motion import MotionModel
from lipstream.realtime.phonemes import PHONES, phoneme_posteriors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_lag import best_shift  # noqa: E402

SETS = {
    "grid_s1_dev": "dev_grid",
    "vctk_dev": "dev_vctk",
    "librispeech_test_other": "dev_libritest",
}
MAX_SHIFT = 12  # hops: +-120 ms
HOP_MS = 10.0


def mouth_every_hop(model: MotionModel, phones: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``(T, 6)`` mouth rows for windows ending at every hop of a ``(T, 40)`` phone sequence."""
    width = model.contract.window_frames
    seq = np.concatenate([np.repeat(sil_row()[None], width, 0), phones]).astype(np.float32)
    lev = np.concatenate([np.full(width, SILENCE_DB, np.float32), levels]).astype(np.float32)
    index = np.arange(1, len(phones) + 1)[:, None] + np.arange(-width, 0)[None, :] + width
    return model(seq[index], lev[index])


def utterance_lag(model: MotionModel, audio: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Opening and width lag (and r) of the posterior-driven mouth against the label-driven one."""
    post = phoneme_posteriors(audio)[: len(labels)]
    n = len(post)
    levels = np.full(n, SILENCE_DB, np.float32)
    measured = hop_levels_db(audio)[:n]
    levels[: len(measured)] = measured
    truth = mouth_every_hop(model, np.eye(len(PHONES), dtype=np.float32)[labels[:n]], levels)
    heard = mouth_every_hop(model, post, levels)
    open_lag, open_r = best_shift(truth[:, 0], heard[:, 0], MAX_SHIFT, HOP_MS)
    width_lag, width_r = best_shift(truth[:, 1], heard[:, 1], MAX_SHIFT, HOP_MS)
    return {"open_lag": open_lag, "open_r": open_r, "width_lag": width_lag, "width_r": width_r}


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Median lags, mean r, over utterances."""
    return {
        "open_lag_median_ms": round(float(np.median([r["open_lag"] for r in rows])), 1),
        "open_lag_mean_ms": round(float(np.mean([r["open_lag"] for r in rows])), 1),
        "open_r_mean": round(float(np.mean([r["open_r"] for r in rows])), 3),
        "width_lag_median_ms": round(float(np.median([r["width_lag"] for r in rows])), 1),
        "width_r_mean": round(float(np.mean([r["width_r"] for r in rows])), 3),
    }


def main() -> None:
    """Prints and saves one summary per voice set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--motion", type=Path, default=None, help="motion ONNX (default: shipped)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/posterior_lag.json"))
    args = parser.parse_args()
    model = MotionModel(args.motion) if args.motion else MotionModel()
    report: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "sets": {}}
    for name, shard in SETS.items():
        utterances = dev_utterances(shard)[: args.clips]
        rows = [utterance_lag(model, audio, labels) for audio, labels in utterances]
        row = {"utterances": len(utterances), **summary(rows)}
        report["sets"][name] = row
        print(name, row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
