"""Dubbing speed on this machine: GRID 360x288 clips and a 1280x720 clip, as a realtime factor.

realtime factor = output seconds / wall seconds of one ``dub_file`` call (decode, tracking,
rendering, encoding and muxing; models loaded by a warm-up dub first). Beside it the CPU realtime
factor, output seconds / CPU seconds of the process (all threads): what one core would give alone,
which on a shared machine says more than the wall clock. Each input is dubbed
``--repeats`` times and the best (least disturbed) run is reported, with the median beside it, as
``bench/render_speed.py`` does. The 720p input is a GRID s1 dev clip scaled to 720 px high and
pillarboxed to 1280x720 (the face is then ~2.5x larger than in GRID, so the generator runs at its
largest crop, 256 px, and the crop is upscaled). Issue 14's floors: >= 1x at 360x288, >= 0.5x at
720p.

``command_realtime_factor`` times the whole ``lipstream dub`` command instead (a new process each
time: interpreter start, imports, model loading, the dub, exit), which is what an outside check
that runs the CLI sees; best and median of ``--repeats``.

    OMP_NUM_THREADS=1 python bench/dub_speed.py --out bench/results/dub_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lipstream.dub.engine import dub_file
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, split_ids


def make_720p(src: Path, out: Path) -> Path:
    """``src`` scaled to 720 px high, pillarboxed to 1280x720, H.264 crf 18, no audio."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-an", "-vf",
         "scale=-2:720,pad=1280:720:(ow-iw)/2:0", "-c:v", "libx264", "-crf", "18",
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def timed(video: Path, audio: Path, out: Path, repeats: int) -> dict:
    """Best and median realtime factor over ``repeats`` dubs of ``video`` with ``audio``."""
    runs = [dub_file(video, audio, out) for _ in range(repeats)]
    factors = [r.realtime_factor for r in runs]
    return {
        "video": video.name,
        "frames": runs[0].frames,
        "output_s": runs[0].output_s,
        "best_realtime_factor": round(max(factors), 3),
        "median_realtime_factor": round(float(np.median(factors)), 3),
        "best_seconds": round(min(r.seconds for r in runs), 3),
        "best_cpu_seconds": round(min(r.cpu_seconds for r in runs), 3),
        "cpu_realtime_factor": round(runs[0].output_s / min(r.cpu_seconds for r in runs), 3),
    }


def timed_command(video: Path, audio: Path, out: Path, repeats: int) -> dict:
    """Best and median realtime factor of the whole ``lipstream dub`` command, start to exit."""
    cli = Path(sys.executable).with_name("lipstream")
    factors = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            [str(cli), "dub", "--video", str(video), "--audio", str(audio), "-o", str(out),
             "--no-progress"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        factors.append(json.loads(done.stdout.splitlines()[-1])["output_s"] / wall)
    return {
        "command_best_realtime_factor": round(max(factors), 3),
        "command_median_realtime_factor": round(float(np.median(factors)), 3),
    }


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="GRID dev clips at 360x288")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hd-only", action="store_true", help="only the 1280x720 clip")
    parser.add_argument("--out", type=Path, default=Path("bench/results/dub_speed.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dub-speed-"))
    load_at_start = os.getloadavg()
    _, dev = split_ids(clip_ids())
    grid = GRID_DIR / "s1"
    dub_file(grid / f"{dev[0]}.mp4", grid / f"{dev[1]}.mp4", work / "warmup.mp4")
    results = {"grid_360x288": [], "hd_1280x720": []}
    for k in range(0 if args.hd_only else args.clips):  # pairs of different sentences
        a, b = grid / f"{dev[2 * k]}.mp4", grid / f"{dev[2 * k + 1]}.mp4"
        row = timed(a, b, work / "grid.mp4", args.repeats)
        row.update(timed_command(a, b, work / "grid_cli.mp4", args.repeats))
        results["grid_360x288"].append(row)
        print(json.dumps(results["grid_360x288"][-1]), flush=True)
    hd = make_720p(grid / f"{dev[0]}.mp4", work / "hd.mp4")
    row = timed(hd, grid / f"{dev[1]}.mp4", work / "hd_out.mp4", args.repeats)
    row.update(timed_command(hd, grid / f"{dev[1]}.mp4", work / "hd_cli.mp4", args.repeats))
    results["hd_1280x720"].append(row)
    print(json.dumps(results["hd_1280x720"][-1]), flush=True)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": load_at_start,
        "load_avg_at_end": os.getloadavg(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": "GRID s1 dev split (every 20th sorted clip id), CC BY 4.0, Cooke et al. 2006",
        "summary": {
            key: {
                "min_best_realtime_factor": min(r["best_realtime_factor"] for r in rows),
                "mean_best_realtime_factor": round(
                    float(np.mean([r["best_realtime_factor"] for r in rows])), 3
                ),
                "min_cpu_realtime_factor": min(r["cpu_realtime_factor"] for r in rows),
                "min_command_best_realtime_factor": min(
                    r["command_best_realtime_factor"] for r in rows
                ),
                "mean_command_median_realtime_factor": round(
                    float(np.mean([r["command_median_realtime_factor"] for r in rows])), 3
                ),
            }
            for key, rows in results.items()
            if rows
        },
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["summary"]))


if __name__ == "__main__":
    main()
