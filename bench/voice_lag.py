"""How late the learned mouth moves on voices the motion model never heard, by voice lead.

    OMP_NUM_THREADS=1 python bench/voice_lag.py [--clips 30] [--leads 0,10,20]
        [--out bench/results/voice_lag.json]

The motion model learned one speaker's timing (GRID s1). For each clip of three voice sets (GRID
s1 dev clips; VCTK, British; LibriSpeech test-other, American) the offline pipeline renders mouth
rows as ``lipstream render`` does, and the clip's offset is the shift of best correlation between
the voice's loudness (dBFS of each 40 ms frame, floored 50 dB below the loudest) and the rendered
opening, within +-200 ms, refined between frames by a parabola (+ = mouth after voice). On real
GRID faces a similar measure gives 0 ms (``bench/av_reference.py``). ``voice_lead_ms`` (the
``LearnedDriver`` argument; ``server/offline.py`` ``OFFLINE_VOICE_LEAD_MS``) ends the model's
windows later, so the mouth moves earlier. Only mouths are measured here, no video: other
speakers' real lips are not in ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from lipstream.dub.media import read_audio
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, split_ids
from lipstream.realtime.clock import SAMPLE_RATE_HZ, MediaClock
from lipstream.realtime.motion import LearnedDriver
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.server.offline import render_poses

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FPS = 25
FRAME = SAMPLE_RATE_HZ // FPS
MAX_SHIFT = 5  # frames: +-200 ms


def voice_sets(clips: int) -> dict[str, list[Path]]:
    """The clips of each voice set, at most ``clips`` each."""
    _, dev = split_ids(clip_ids())
    libri = [line.split("\t")[0] for line in (DATA / "librispeech" / "texts.tsv").open()]
    return {
        "grid_s1_dev": [GRID_DIR / "s1" / f"{c}.mp4" for c in dev][:clips],
        "vctk": sorted((DATA / "vctk").glob("*.flac"))[:clips],
        "librispeech_test_other": [DATA / "librispeech" / f"{c}.ogg" for c in libri][:clips],
    }


def opening_rows(speech: np.ndarray, lead_ms: int) -> np.ndarray:
    clock = MediaClock(fps=FPS)
    poses = render_poses(MotionPipeline(clock, LearnedDriver(clock, voice_lead_ms=lead_ms)), speech)
    return np.array([p.mouth[0] for p in poses], np.float64)


def loudness_db(speech: np.ndarray, n: int) -> np.ndarray:
    frames = speech[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    return np.maximum(db, db.max() - 50.0)


def best_shift(
    reference: np.ndarray, moved: np.ndarray, max_shift: int, step_ms: float
) -> tuple[float, float]:
    """(lag in ms, + = ``moved`` later; r there) of best correlation within +-``max_shift`` steps.

    The whole-step peak is refined between steps by a parabola through it and its neighbours.
    Shared with ``bench/posterior_lag.py``.
    """
    n = min(len(reference), len(moved))
    corr = []
    for s in range(-max_shift, max_shift + 1):
        x, y = (reference[: n - s], moved[s:n]) if s >= 0 else (reference[-s:n], moved[: n + s])
        corr.append(np.corrcoef(x, y)[0, 1])
    c = np.nan_to_num(np.array(corr), nan=-1.0)
    k, frac = int(np.argmax(c)), 0.0
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1 : k + 2]
        curve = y0 - 2.0 * y1 + y2
        frac = 0.5 * (y0 - y2) / curve if curve != 0 else 0.0
    return (k - max_shift + frac) * step_ms, float(c[k])


def offset_ms(voice: np.ndarray, mouth: np.ndarray) -> float:
    """Shift of best correlation, mouth against voice (+ = mouth later), in ms."""
    return best_shift(voice, mouth, MAX_SHIFT, 1000.0 / FPS)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--leads", default="0,10,20", help="voice leads to compare, ms")
    parser.add_argument("--out", type=Path, default=Path("bench/results/voice_lag.json"))
    args = parser.parse_args()
    leads = [int(v) for v in args.leads.split(",")]
    report: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "sets": {}}
    for name, paths in voice_sets(args.clips).items():
        speech = [read_audio(p, SAMPLE_RATE_HZ)[0] for p in paths]
        row = {}
        for lead in leads:
            offsets = []
            for x in speech:
                mouth = opening_rows(x, lead)
                n = min(len(mouth), len(x) // FRAME)
                offsets.append(offset_ms(loudness_db(x, n), mouth[:n]))
            row[str(lead)] = {
                "mean_ms": round(float(np.mean(offsets)), 1),
                "median_ms": round(float(np.median(offsets)), 1),
                "iqr_ms": [round(float(v), 1) for v in np.percentile(offsets, [25, 75])],
            }
            print(name, f"lead {lead} ms", row[str(lead)], flush=True)
        report["sets"][name] = {"clips": len(paths), "by_lead_ms": row}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
