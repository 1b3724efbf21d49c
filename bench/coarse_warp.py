"""The warp on a coarse grid against the full grid: the same face, for less CPU.

On the poses the server makes of real speech (LibriSpeech through the server's own stages, as
``bench/stage_cost.py``; ../shared/data, CC BY 4.0), for the built-in avatar and every photo in
../shared/photos:

- how many frames the coarse grid carries (``realtime/coarse_warp.py`` ``carries``), blinks and
  strong /f v/ tucks;
- the PSNR of each coarse crop against the full grid's (median and minimum over the poses);
- the CPU of ``Renderer.render_crop`` on each grid, the two renderers alternated in blocks of poses
  in one process so that the machine's drift falls on both (median of the blocks);
- on the built-in avatar, the inner-lip gap over face height that MediaPipe reads at small
  openings, on each grid: the full grid's one- or two-pixel gaps are too faint to read.

Writes ``bench/results/coarse_warp.json``.

    python -m bench.coarse_warp [--seconds 30] [--rounds 8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from lipstream.avatar import build_avatar, default_photo
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.coarse_warp import MAX_TUCK, carries
from lipstream.realtime.pose import MOUTH_PARAMS, FramePose
from lipstream.realtime.render import Renderer
from lipstream.server.media import aiortc_tuning

from bench.mouth import MouthMeter
from bench.report import save
from bench.stage_cost import PACKETS_PER_FRAME, ServerStages, StageClock, speech_packets

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
SMALL_OPENINGS = (0.01, 0.015, 0.02, 0.03, 0.05)
TUCK = MOUTH_PARAMS.index("tuck")


def speech_poses(seconds: float) -> list[FramePose]:
    """The pose of every frame the server renders for ``seconds`` of real speech."""
    aiortc_tuning.apply()
    stages = ServerStages(StageClock())
    poses: list[FramePose] = []
    composer = stages._composer  # noqa: SLF001  (the frames the server would render)
    inner = composer.frame

    def spy(pose: FramePose):  # type: ignore[no-untyped-def]
        poses.append(pose)
        return inner(pose)

    composer.frame = spy  # type: ignore[method-assign]
    packets = speech_packets(seconds)
    for start in range(0, len(packets) - PACKETS_PER_FRAME + 1, PACKETS_PER_FRAME):
        stages.frame(packets[start : start + PACKETS_PER_FRAME])
    return poses


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def compare(avatar: Avatar, poses: list[FramePose], rounds: int) -> dict[str, float]:
    """PSNR of coarse against full crops, and the CPU of each renderer alternated in blocks."""
    coarse, full = Renderer(avatar), Renderer(avatar, coarse=False)
    psnr = [_psnr(coarse.render_crop(p), full.render_crop(p)) for p in poses]
    block = max(1, len(poses) // rounds)
    cpu: dict[str, list[float]] = {"coarse": [], "full": []}
    for i in range(rounds):
        chunk = poses[i * block : (i + 1) * block]
        order = [("coarse", coarse), ("full", full)]
        for name, renderer in order if i % 2 else order[::-1]:
            start = time.thread_time()
            for pose in chunk:
                renderer.render_crop(pose)
            cpu[name].append((time.thread_time() - start) / len(chunk) * 1e6)
    return {
        "crop_px": avatar.crop_px,
        "psnr_db_median": round(float(np.median(psnr)), 1),
        "psnr_db_min": round(float(np.min(psnr)), 1),
        "render_crop_us_coarse": round(float(np.median(cpu["coarse"]))),
        "render_crop_us_full": round(float(np.median(cpu["full"]))),
    }


def small_openings(avatar: Avatar) -> dict[str, dict[str, float]]:
    """The gap MediaPipe reads at small ``open`` values (jaw at 0.6 of it), on each grid."""
    meter = MouthMeter()
    out: dict[str, dict[str, float]] = {}
    for name, renderer in (("coarse", Renderer(avatar)), ("full", Renderer(avatar, coarse=False))):
        out[name] = {}
        for value in SMALL_OPENINGS:
            mouth = np.zeros(len(MOUTH_PARAMS), np.float32)
            mouth[0], mouth[MOUTH_PARAMS.index("jaw")] = value, 0.6 * value
            out[name][str(value)] = round(meter(renderer.render(FramePose(0, mouth))), 4)
    meter.close()
    return out


def main() -> None:
    """Runs every measure and writes ``bench/results/coarse_warp.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as the server (server/http/app.py)
    poses = speech_poses(args.seconds)
    blinks = np.array([p.blink > 0 for p in poses])
    tucks = np.array([float(np.asarray(p.mouth).reshape(-1)[TUCK]) > MAX_TUCK for p in poses])
    carried = np.array(
        [carries(p.blink, float(np.asarray(p.mouth).reshape(-1)[TUCK])) for p in poses]
    )
    photos: dict[str, bytes | Path] = {"built-in": default_photo()}
    photos.update({p.name: p for p in sorted(PHOTOS.glob("*.[jp][pn]g"))})
    avatars = {name: Avatar.load(build_avatar(photo).path) for name, photo in photos.items()}
    result = {
        "frames": len(poses),
        "carried_share": round(float(carried.mean()), 3),
        "blink_share": round(float(blinks.mean()), 3),
        "strong_tuck_share": round(float(tucks.mean()), 3),
        "by_avatar": {name: compare(a, poses, args.rounds) for name, a in avatars.items()},
        "gap_read_at_small_openings": small_openings(avatars["built-in"]),
    }
    command = f"python -m bench.coarse_warp --seconds {args.seconds:g} --rounds {args.rounds}"
    save("coarse_warp", result, command)


if __name__ == "__main__":
    main()
