"""What skipping the networks in silence changes: the mouth with and without ``push_quiet``.

``MotionPipeline`` lets the learned driver skip the encoder's network and the motion model while
the VAD hears no speech (``LearnedDriver.push_quiet``); at the next speech the encoder re-hears its
last ``WARMUP_FRAMES`` feature frames from a fresh state (``StreamingPhonemeEncoder.rehear``). Its
GRUs remember longer than that, so the mouth of the first words after a silence can differ from a
run that never stopped. This measures by how much, for several warm-up lengths: each dev clip
(GRID s1 dev videos' audio and VCTK, ../shared/data, CC BY 4.0) is preceded by 4 s of its own
leading room noise, run through the pipeline in 20 ms packets with and without skipping, and the
largest difference of any mouth parameter and the r of opening, width and jaw are reported, with
the cost of one warm-up run and of a silent frame either way.

    python -m bench.quiet_driver [--clips 6] [--warmups 40 64 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from lipstream.realtime import encoder as encoder_module
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.motion import LearnedDriver
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.server.offline import read_audio_16k

from bench.report import save

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PACKET = 320  # 20 ms at 16 kHz, as the server feeds the pipeline
LEAD_NOISE_S = 4.0
LEAD_SAMPLES = 4000  # the first 250 ms of a clip: its room, before anyone speaks
FRAME_S = 0.04


class Unbroken:
    """The learned driver without ``push_quiet``: the pipeline never skips."""

    def __init__(self, driver: LearnedDriver) -> None:
        self.push, self.reset = driver.push, driver.reset
        self.lookahead_samples = driver.lookahead_samples
        self.lips_lag_samples = driver.lips_lag_samples


def dev_audio(count: int) -> list[tuple[str, np.ndarray]]:
    """Half GRID s1 dev clips (every 20th sorted clip, as the models hold out), half VCTK."""
    grid = sorted((SHARED / "grid" / "s1").glob("*.mp4"))[::20][: count - count // 2]
    vctk = sorted((SHARED / "vctk").glob("*.flac"))[: count // 2]
    return [(p.name, read_audio_16k(p)) for p in [*grid, *vctk]]


def mouths(audio: np.ndarray, skipping: bool) -> tuple[np.ndarray, float]:
    """The pipeline's mouth rows for ``audio`` fed in packets, and its CPU seconds."""
    clock = MediaClock(25)
    driver = LearnedDriver(clock)
    pipeline = MotionPipeline(clock, driver if skipping else Unbroken(driver))  # type: ignore[arg-type]
    start = time.thread_time()
    poses = [p for i in range(0, len(audio), PACKET) for p in pipeline.push(audio[i : i + PACKET])]
    return np.array([p.mouth for p in poses]), time.thread_time() - start


def compare(clips: list[tuple[str, np.ndarray]]) -> dict[str, object]:
    """Largest mouth difference and r (open, width, jaw) over ``clips``, each after room noise."""
    worst, rs = 0.0, []
    for _, audio in clips:
        lead = np.tile(audio[:LEAD_SAMPLES], int(LEAD_NOISE_S * 16_000 / LEAD_SAMPLES))
        padded = np.concatenate([lead, audio]).astype(np.float32)
        steady, _ = mouths(padded, skipping=False)
        skipped, _ = mouths(padded, skipping=True)
        worst = max(worst, float(np.abs(steady - skipped).max()))
        rs += [float(np.corrcoef(steady[:, k], skipped[:, k])[0, 1]) for k in range(3)]
    return {"max_abs_difference": round(worst, 4), "r_min": round(min(rs), 4)}


def warmup_ms(frames: int) -> float:
    """CPU ms of one network run over ``frames`` feature frames (what ``rehear`` costs)."""
    encoder = encoder_module.StreamingPhonemeEncoder()
    feats = np.zeros((frames, encoder._width), np.float32)  # noqa: SLF001
    start = time.thread_time()
    for _ in range(20):
        encoder._advance(feats)  # noqa: SLF001
    return round(1000 * (time.thread_time() - start) / 20, 2)


def silent_frame_us(skipping: bool) -> float:
    """CPU µs per video frame of the pipeline on 20 s of room noise (-60 dBFS)."""
    noise = (1e-3 * np.random.default_rng(0).standard_normal(16_000 * 20)).astype(np.float32)
    _, seconds = mouths(noise, skipping)
    return round(1e6 * seconds / (len(noise) / 16_000 / FRAME_S))


def main() -> None:
    """Prints the table and writes ``bench/results/quiet_driver.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--warmups", type=int, nargs="+", default=[40, 64, 100])
    args = parser.parse_args()
    clips = dev_audio(args.clips)
    shipped = encoder_module.WARMUP_FRAMES
    by_warmup = {}
    for frames in args.warmups:
        encoder_module.WARMUP_FRAMES = frames
        by_warmup[str(frames)] = {**compare(clips), "warmup_run_ms": warmup_ms(frames)}
    encoder_module.WARMUP_FRAMES = shipped
    result = {
        "clips": [name for name, _ in clips],
        "shipped_warmup_frames": shipped,
        "by_warmup_frames": by_warmup,
        "silent_frame_us": {"skipping": silent_frame_us(True), "never": silent_frame_us(False)},
    }
    command = f"python -m bench.quiet_driver --clips {args.clips} --warmups " + " ".join(
        str(w) for w in args.warmups
    )
    save("quiet_driver", result, command)


if __name__ == "__main__":
    main()
