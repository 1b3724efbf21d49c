"""Self-reenactment on dev GRID clips: does the driven avatar's mouth open when the speaker's does?

For each dev clip (every 20th GRID s1 clip, see ``models/motion/dataset.split_ids``) and each
mouth driver, the clip's audio goes through the driver exactly as in the live pipeline. Two levels:

- ``params``: the driver's ``open`` parameter against the real inner-lip opening (no renderer).
- ``render``: the avatar built from the clip's first frame (the first with a face) is rendered with
  those parameters, MediaPipe measures the inner-lip opening (landmarks 13-14 over 10-152) on the
  render, and that is compared with the same measurement on the real video.

Per clip: Pearson r, the best r within +-200 ms and its lag, the fraction of rendered frames with a
face.

    OMP_NUM_THREADS=1 nice -n 10 python bench/reenactment.py --out bench/results/reenactment.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, onehot_from_alignment, split_ids
from lipstream.models.motion.landmarks import (
    LANDMARK_DIR,
    MeshTracker,
    decode_clip,
    mouth_params_raw,
)
from lipstream.models.motion.metrics import lip_sync
from lipstream.models.motion.posteriors import pitch_shift
from lipstream.models.motion.scripted import ScriptedEncoder
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.driver import MouthDriver
from lipstream.realtime.pose import N_MOUTH_PARAMS, FramePose

logger = logging.getLogger("reenactment")

FPS = 25


def make_driver(name: str, clock: MediaClock, clip_id: str, n_samples: int) -> MouthDriver:
    """Driver by name: ``learned`` (encoder + motion), ``aligned`` (true phones), ``loudness``."""
    if name in ("learned", "aligned"):
        from lipstream.realtime.motion import LearnedDriver
        from lipstream.server.offline import OFFLINE_VOICE_LEAD_MS

        if name == "aligned":
            n_hops = (n_samples + clock.sample_rate_hz) // 160  # a second of SIL past the end
            return LearnedDriver(
                clock, encoder=ScriptedEncoder(onehot_from_alignment(clip_id, n_hops))
            )
        return LearnedDriver(clock, voice_lead_ms=OFFLINE_VOICE_LEAD_MS)  # as `lipstream render`
    if name == "loudness":
        from lipstream.realtime.loudness import LoudnessDriver

        return LoudnessDriver(clock)
    raise ValueError(f"unknown driver {name!r}; expected learned, aligned or loudness")


def drive(driver: MouthDriver, audio: np.ndarray, n_frames: int, clock: MediaClock) -> np.ndarray:
    """``(n_frames, N_MOUTH_PARAMS)`` rows for ``audio``, fed in 20 ms chunks as the server does.

    Silence is appended for the look-ahead so the last frames come out; frames past the audio are
    rest-mouth rows.
    """
    tail = np.zeros(driver.lookahead_samples + clock.frame_end(0), np.float32)
    stream = np.concatenate([audio.astype(np.float32), tail])
    chunk = clock.sample_rate_hz // 50
    rows = [driver.push(stream[i : i + chunk]) for i in range(0, len(stream), chunk)]
    out = np.concatenate(rows) if rows else np.zeros((0, N_MOUTH_PARAMS), np.float32)
    if len(out) < n_frames:
        out = np.concatenate([out, np.zeros((n_frames - len(out), N_MOUTH_PARAMS), np.float32)])
    return out[:n_frames]


def render_opening(
    first_frame: np.ndarray, rows: np.ndarray, workdir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Renders the avatar of ``first_frame`` with ``rows`` and measures its inner-lip opening.

    Returns ``(open, found)``: ``(T,)`` float32 face-height opening (NaN where no face) and bool.
    """
    import cv2
    from lipstream.avatar import build_avatar
    from lipstream.realtime.avatar import Avatar
    from lipstream.realtime.render import Renderer

    workdir.mkdir(parents=True, exist_ok=True)
    photo = workdir / "first_frame.png"
    cv2.imwrite(str(photo), cv2.cvtColor(first_frame, cv2.COLOR_RGB2BGR))
    built = build_avatar(photo, cache_dir=workdir.parent / "avatars")
    renderer = Renderer(Avatar.load(built.path))
    frames = np.stack(
        [renderer.render(FramePose(index=i, mouth=row)) for i, row in enumerate(rows)]
    )
    tracker = MeshTracker()
    try:
        points = tracker(frames)
    finally:
        tracker.close()
    found = ~np.isnan(points[:, 0, 0])
    return mouth_params_raw(points)[:, 0], found


def clip_result(
    clip_id: str, drivers: list[str], render: bool, workdir: Path, pitch_cents: int = 0
) -> dict:
    """All measurements of one clip; ``pitch_cents`` shifts the voice (other-voice stand-in)."""
    with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
        points, found = data["points"], data["found"]
    real_open = mouth_params_raw(points)[:, 0]
    video = decode_clip(GRID_DIR / "s1" / f"{clip_id}.mp4")
    audio = pitch_shift(video.audio.astype(np.float32) / 32768.0, pitch_cents)
    clock = MediaClock(fps=FPS)
    # A few GRID videos open on grey frames (11 of 895): build from the first frame with a face.
    first = int(np.argmax(found))
    result: dict = {"clip": clip_id, "real_found_rate": float(found.mean()), "avatar_frame": first}
    for name in drivers:
        driver = make_driver(name, clock, clip_id, len(audio))
        rows = drive(driver, audio, len(real_open), clock)
        entry = {"params": asdict(lip_sync(rows[:, 0], real_open, found, FPS))}
        if render:
            rendered, rfound = render_opening(video.frames[first], rows, workdir / clip_id / name)
            entry["render"] = asdict(lip_sync(rendered, real_open, found & rfound, FPS))
            entry["render"]["found_rate"] = float(rfound.mean())
        result[name] = entry
    return result


def summarise(results: list[dict], drivers: list[str]) -> dict:
    """Mean r, mean best r, median lag and face-found rate per driver and level."""
    out: dict = {}
    for name in drivers:
        for level in ("params", "render"):
            rows = [r[name][level] for r in results if level in r[name]]
            if not rows:
                continue
            summary = {
                "mean_r": float(np.mean([x["r"] for x in rows])),
                "mean_best_r": float(np.mean([x["best_r"] for x in rows])),
                "median_lag_ms": float(np.median([x["lag_ms"] for x in rows])),
                "n_clips": len(rows),
            }
            if level == "render":
                summary["found_rate"] = float(np.mean([x["found_rate"] for x in rows]))
            out[f"{name}/{level}"] = summary
    return out


def write_report(
    out: Path, started: float, summary: dict, clips: list[dict], **extra: object
) -> None:
    """Writes a GRID s1 dev-set report (command, machine, time, summary, clips) and prints it."""
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": platform.platform(),
        "elapsed_s": round(time.monotonic() - started, 1),
        **extra,
        "data": "GRID s1 dev split (every 20th sorted clip id), CC BY 4.0, Cooke et al. 2006",
        "summary": summary,
        "clips": clips,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    width = max(map(len, summary), default=0)
    for key, value in summary.items():
        print(f"{key:{width}s} " + " ".join(f"{k}={v:.3f}" for k, v in value.items()))


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", default="learned,aligned,loudness")
    parser.add_argument("--limit", type=int, default=0, help="first N dev clips (0: all)")
    parser.add_argument("--no-render", action="store_true", help="parameter-level metrics only")
    parser.add_argument(
        "--pitch-cents",
        type=int,
        default=0,
        help="shift the voice by this many cents with sox (other-voice proxy)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lipstream-reenactment"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/reenactment.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    drivers = args.drivers.split(",")
    _, dev_ids = split_ids(clip_ids())
    if args.limit:
        dev_ids = dev_ids[: args.limit]
    started = time.monotonic()
    results = []
    for clip_id in dev_ids:
        results.append(
            clip_result(clip_id, drivers, not args.no_render, args.workdir, args.pitch_cents)
        )
        logger.info("%s %s", clip_id, {d: results[-1][d] for d in drivers})
    summary = summarise(results, drivers)
    write_report(args.out, started, summary, results, pitch_cents=args.pitch_cents)


if __name__ == "__main__":
    main()
