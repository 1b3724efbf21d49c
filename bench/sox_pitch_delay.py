"""How far sox ``pitch`` (``models/motion/posteriors.pitch_shift``) moves speech in time.

For the first 20 GRID s1 dev clips (CC BY 4.0, Cooke et al. 2006): the lag, in 10 ms steps within
+-80 ms, that best aligns the log-RMS envelope (10 ms frames) of the shifted audio with the
original's; positive = the shifted audio is later. The pitch-moved voices stand in for other
speakers against s1's real lips, so any lag here is a lag of the audio, not of the mouth. Printed
for sox's raw output and for ``pitch_shift``, which rolls each clip back by its own lag (1 ms
envelope steps), as the motion model's training variants are made.

    OMP_NUM_THREADS=1 python bench/sox_pitch_delay.py [--cents=-400,-200,250,450,700]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, split_ids
from lipstream.models.motion.landmarks import decode_clip
from lipstream.models.motion.posteriors import pitch_shift, sox_pitch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_shape import best_lag_ms  # noqa: E402

HOP = 160  # samples: 10 ms at 16 kHz
MAX_LAG = 8  # hops


def envelope(audio: np.ndarray) -> np.ndarray:
    """Log RMS per 10 ms frame."""
    n = len(audio) // HOP
    return np.log(np.sqrt((audio[: n * HOP].reshape(n, HOP) ** 2).mean(1)) + 1e-4)


def main() -> None:
    """Prints the mean and the per-clip lags for each shift."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cents", default="-400,-200,250,450,700")
    args = parser.parse_args()
    _, dev = split_ids(clip_ids())
    audios = [decode_clip(GRID_DIR / "s1" / f"{c}.mp4").audio.astype(np.float32) / 32768.0
              for c in dev[:20]]  # fmt: skip
    for cents in (int(c) for c in args.cents.split(",")):
        for name, shift in (("sox pitch", sox_pitch), ("pitch_shift (realigned)", pitch_shift)):
            lags = [best_lag_ms(envelope(a), envelope(shift(a, cents)), MAX_LAG, 10.0)
                    for a in audios]  # fmt: skip
            print(f"{cents:+d} cents, {name}: mean {np.mean(lags):+.1f} ms, per clip", sorted(lags))


if __name__ == "__main__":
    main()
