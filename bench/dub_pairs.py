"""Dubbing on GRID s1 dev pairs: A's video with B's audio, measured against B's real lips.

Pairs are consecutive dev clips (every 20th sorted clip id, ``models/motion/dataset.split_ids``):
two different sentences of the same speaker. For each pair, ``dub_file`` dubs A's video with B's
soundtrack (``cut_off``), then MediaPipe face mesh measures the dubbed video as
``bench/reenactment.py`` measures renders (inner-lip gap 13-14 over face height 10-152):

- r(dubbed, B real): the lips follow the new audio (issue 14 floor: mean >= 0.70);
- r(dubbed, A real): A's own lips must not leak through (floor: r_B - r_A >= 0.20);
- baseline: r(A real, B real), what two different s1 sentences share by their structure;
- SSIM of the face outside the mouth and jaw (grey, forehead 10 to nose base 2, cheek 234 to
  cheek 454, from A's landmarks) against A's own frames; beside it A's first frame held still
  against the same frames (what a photo avatar would score: head motion lost);
- faces found: dubbed frames where MediaPipe finds a face, and where the engine found one;
- output length: frames == min(A's frames, floor(B's audio s * fps)) exactly;
- realtime factor: output seconds / wall seconds of ``dub_file`` (model loading excluded: one
  warm-up dub first).

    OMP_NUM_THREADS=1 nice -n 10 python bench/dub_pairs.py --pairs 10 \
        --out bench/results/dub_pairs.json --sheet docs/dub_contact_sheet.png
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
from lipstream.dub.engine import dub_file
from lipstream.models.motion.dataset import GRID_DIR, clip_ids, split_ids
from lipstream.models.motion.landmarks import LANDMARK_DIR, MeshTracker, mouth_params_raw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_shape import pearson, ssim  # noqa: E402
from reenactment import write_report  # noqa: E402

logger = logging.getLogger("dub_pairs")


def read_rgb(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of ``path`` as RGB uint8, and its frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], fps


def real_points(clip_id: str) -> np.ndarray:
    """Cached MediaPipe landmarks ``(T, 478, 3)`` of a GRID clip (NaN where no face)."""
    with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
        return data["points"]


def upper_face_ssim(frames: list[np.ndarray], refs: list[np.ndarray], points: np.ndarray) -> float:
    """Mean SSIM of the grey upper face (10 to 2, 234 to 454 of ``points``) of frame pairs."""
    scores = []
    for frame, ref, pts in zip(frames, refs, points, strict=False):
        if np.isnan(pts[0, 0]):
            continue
        y0, y1 = int(pts[10, 1]), int(pts[2, 1])
        x0, x1 = int(pts[234, 0]), int(pts[454, 0])
        if y1 - y0 < 8 or x1 - x0 < 8:
            continue
        a = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(np.ascontiguousarray(ref[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        scores.append(ssim(a.astype(float), b.astype(float)))
    return float(np.mean(scores)) if scores else float("nan")


def pair_result(a: str, b: str, workdir: Path) -> dict:
    """Every measure of dubbing A's video with B's audio."""
    src = GRID_DIR / "s1"
    out = workdir / f"{a}_{b}.mp4"
    summary = dub_file(src / f"{a}.mp4", src / f"{b}.mp4", out)
    dubbed, fps = read_rgb(out)
    frames_a, _ = read_rgb(src / f"{a}.mp4")
    tracker = MeshTracker()
    try:
        dub_points = tracker(np.stack(dubbed))
    finally:
        tracker.close()
    pa, pb = real_points(a), real_points(b)
    d_open = mouth_params_raw(dub_points)[:, 0]
    a_open, b_open = mouth_params_raw(pa)[:, 0], mouth_params_raw(pb)[:, 0]
    n = len(d_open)
    with av.open(str(src / f"{b}.mp4")) as container:
        stream = container.streams.audio[0]
        b_audio_s = float(stream.duration * stream.time_base)
    expected = min(len(frames_a), int(math.floor(b_audio_s * fps + 1e-6)))
    first = int(np.argmax(~np.isnan(pa[:, 0, 0])))
    return {
        "a": a,
        "b": b,
        "r_b": pearson(d_open, b_open[:n]),
        "r_a": pearson(d_open, a_open[:n]),
        "r_ab_real": pearson(a_open, b_open[: len(a_open)]),
        "ssim_upper_face": upper_face_ssim(dubbed, frames_a[:n], pa[:n]),
        "ssim_still_first_frame": upper_face_ssim([frames_a[first]] * n, frames_a[:n], pa[:n]),
        "mediapipe_face_rate": float(np.mean(~np.isnan(d_open))),
        "engine_face_rate": summary.faces_found / max(summary.frames, 1),
        "frames": summary.frames,
        "expected_frames": expected,
        "length_exact": summary.frames == n == expected,
        "realtime_factor": summary.realtime_factor,
        "seconds": summary.seconds,
    }


def contact_sheet(a: str, b: str, workdir: Path, path: Path, columns: int = 6) -> None:
    """Rows: A's frames, A dubbed with B's audio, B's own frames (what the lips should do)."""
    src = GRID_DIR / "s1"
    dubbed, _ = read_rgb(workdir / f"{a}_{b}.mp4")
    rows = [read_rgb(src / f"{a}.mp4")[0], dubbed, read_rgb(src / f"{b}.mp4")[0]]
    n = min(len(r) for r in rows)
    b_open = mouth_params_raw(real_points(b))[:n, 0]
    picks = sorted(np.argsort(np.nan_to_num(b_open))[::-1][: columns * 3][::3][:columns])
    pts = real_points(a)
    labels = (f"A ({a})", "A dubbed with B's audio", f"B ({b}): target lips")
    lines = []
    for label, frames in zip(labels, rows, strict=True):
        cells = []
        for i in picks:
            p = pts[i] if not np.isnan(pts[i, 0, 0]) else pts[np.argmax(~np.isnan(pts[:, 0, 0]))]
            cx, cy = int(p[13, 0]), int(p[13, 1])
            if label.startswith("B"):
                q = real_points(b)[i]
                cx, cy = (int(q[13, 0]), int(q[13, 1])) if not np.isnan(q[0, 0]) else (cx, cy)
            crop = frames[i][max(cy - 90, 0) : cy + 50, max(cx - 70, 0) : cx + 70]
            cell = cv2.resize(np.ascontiguousarray(crop), (210, 210))
            cv2.putText(cell, f"t={i / 25:.2f}s", (4, 204), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 0), 1, cv2.LINE_AA)  # fmt: skip
            cells.append(cell)
        strip = np.concatenate(cells, axis=1)
        head = np.zeros((26, strip.shape[1], 3), np.uint8)
        cv2.putText(head, label, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)  # fmt: skip
        lines += [head, strip]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines), cv2.COLOR_RGB2BGR))


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dub_pairs.json"))
    parser.add_argument("--sheet", type=Path, help="before/after contact sheet PNG of pair 0")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dub-pairs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _, dev = split_ids(clip_ids())
    pairs = list(zip(dev[0::2], dev[1::2], strict=False))[: args.pairs]
    started = time.monotonic()
    dub_file(GRID_DIR / "s1" / f"{dev[-1]}.mp4", GRID_DIR / "s1" / f"{dev[-2]}.mp4",
             workdir / "warmup.mp4")  # fmt: skip
    results = []
    for a, b in pairs:
        results.append(pair_result(a, b, workdir))
        logger.info("%s", {k: round(v, 3) if isinstance(v, float) else v
                           for k, v in results[-1].items()})  # fmt: skip
    keys = [k for k, v in results[0].items() if isinstance(v, float)]
    summary = {"dub": {k: round(float(np.nanmean([r[k] for r in results])), 4) for k in keys}}
    summary["dub"]["margin_b_minus_a"] = round(summary["dub"]["r_b"] - summary["dub"]["r_a"], 4)
    summary["dub"]["length_exact_rate"] = float(np.mean([r["length_exact"] for r in results]))
    summary["dub"]["n_pairs"] = len(results)
    write_report(args.out, started, summary, results)
    if args.sheet is not None:
        contact_sheet(*pairs[0], workdir, args.sheet)


if __name__ == "__main__":
    main()
