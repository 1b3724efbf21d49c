"""Render speed: generator alone and full ``Renderer.render`` per photo, one onnxruntime thread.

Run: OMP_NUM_THREADS=1 python bench/render_speed.py [--photos ../shared/photos] [--repeats 200]
    [--framing auto|photo] [--full-grid]
Writes bench/results/render_speed.json (``render_speed_full_grid.json`` with ``--full-grid``, the
warp computed for every pixel instead of on the coarse grid, ``realtime/coarse_warp.py``). Reports
min and median per call (the machine is shared, so min is the cost, median the cost under
contention), as faster-whisper's speed benchmark does.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lipstream.avatar import build_avatar
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer

REPO = Path(__file__).resolve().parents[1]
WARMUP_CALLS = 10

logger = logging.getLogger(__name__)


def _poses(count: int) -> list[FramePose]:
    """A speaking-like sweep of mouth, blink and head values (all fields exercised).

    Blinks and strong /f v/ tucks come about as often as in real speech (4 % and 3 % of frames),
    since those frames take the full grid (``realtime/coarse_warp.py`` ``carries``).
    """
    i = np.arange(count)
    return [
        FramePose(
            int(k),
            np.array(
                [
                    0.06 + 0.05 * np.sin(k * 0.7),
                    0.03 * np.sin(k * 0.3),
                    0.03 + 0.025 * np.sin(k * 0.7),
                    0.01 * np.sin(k * 0.4),
                    max(0.0, np.sin(k * 0.9)),
                    0.6 if k % 33 == 0 else 0.1 * max(0.0, np.sin(k * 1.3)),
                ],
                np.float32,
            ),
            blink=1.0 if k % 25 == 0 else 0.0,
            head=np.array([0.01 * np.sin(k * 0.05), 0.005, 0.02 * np.sin(k * 0.03)], np.float32),
        )
        for k in i
    ]


def _time_calls(fn: object, poses: list[FramePose]) -> dict[str, float]:
    for pose in poses[:WARMUP_CALLS]:
        fn(pose)  # type: ignore[operator]
    times = []
    for pose in poses:
        start = time.perf_counter()
        fn(pose)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    t = np.array(times) * 1e3
    return {"min_ms": round(float(t.min()), 3), "median_ms": round(float(np.median(t)), 3),
            "fps_at_min": round(1e3 / float(t.min()), 1)}  # fmt: skip


def _closeup(photo: Path) -> bytes:
    """A close-up (face fills the photo) cut from ``photo``: exercises the upscaled face view."""
    import cv2

    image = cv2.imread(str(photo))
    return cv2.imencode(".png", image[120:470, 330:680])[1].tobytes()


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--framing", choices=("auto", "photo"), default="auto")
    parser.add_argument("--full-grid", action="store_true", help="warp every pixel in the graph")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    name = "render_speed_full_grid.json" if args.full_grid else "render_speed.json"
    out = args.out or REPO / "bench" / "results" / name
    logging.basicConfig(level=logging.INFO)
    poses = _poses(args.repeats)
    results = []
    photos: dict[str, bytes | Path] = {p.name: p for p in sorted(args.photos.glob("*.[jp][pn]g"))}
    photos["obama closeup (crop 330:680, 120:470)"] = _closeup(args.photos / "obama.jpg")
    with tempfile.TemporaryDirectory() as cache:
        for name, photo in photos.items():
            built = build_avatar(photo, cache_dir=Path(cache), framing=args.framing)
            avatar = Avatar.load(built.path)
            renderer = Renderer(avatar, threads=1, coarse=not args.full_grid)
            row = {"photo": name, "framing": args.framing, "frame_wh": list(avatar.frame_size),
                   "view_px": avatar.view_px, "crop_px": avatar.crop_px,
                   "generator": _time_calls(renderer.render_crop, poses),
                   "render": _time_calls(renderer.render, poses)}  # fmt: skip
            logger.info("%s", row)
            results.append(row)
    report = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
        "onnxruntime_threads": 1,
        "repeats": args.repeats,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
