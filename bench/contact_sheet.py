"""Contact sheet of rendered mouth shapes, for looking at.

Covers every photo in ../shared/photos and the built-in avatar.

Run: python bench/contact_sheet.py [--photos ../shared/photos] [--out bench/results]
    [--framing auto|photo]
Writes ``contact_sheet.png`` (whole output frames, one row per photo, one column per shape),
``contact_sheet_mouth.png`` (the same, zoomed on the mouth) and ``contact_sheet_shapes.json``: the
face mesh (``avatar/detect.py``) measured on every rendered frame, so that "visibly spread" has a
number beside the picture. Per shape, against the rest frame of the same photo: mouth width
61-291 and inner-lip opening 13-14 over the eye distance 33-263 (the issue's definitions), and
roundness, outer lip height 0-17 over width.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np
from lipstream.avatar import build_avatar
from lipstream.avatar.build import default_photo
from lipstream.avatar.framing import FRAMINGS
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer

REPO = Path(__file__).resolve().parents[1]
CELL_PX = 256
MOUTH_CELL_PX = 192
SHAPES: tuple[tuple[str, tuple[float, ...], float], ...] = (
    # label, mouth (realtime.pose.MOUTH_PARAMS: open, width, jaw, protrude, press, tuck), blink.
    # GRID s1's own extremes for each sound: the 90th (10th for negative) percentile of its frames
    # aligned to that phone (AY for /aa/: GRID has no /aa/), from models/motion/dataset.load_clip.
    ("rest", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 0.0),
    ("/aa/", (0.072, -0.005, 0.049, 0.0, 0.0, 0.0), 0.0),
    ("/iy/", (0.03, 0.011, 0.01, -0.016, 0.0, 0.0), 0.0),
    ("/uw/", (0.02, -0.032, 0.01, 0.02, 0.0, 0.0), 0.0),
    ("/m/", (0.0, -0.01, 0.01, 0.02, 1.0, 0.0), 0.0),
    ("/f/", (0.0, -0.01, 0.005, -0.009, 0.0, 1.0), 0.0),
    ("blink", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 1.0),
)

logger = logging.getLogger(__name__)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)
    return out


def _mouth_box(avatar: Avatar) -> tuple[int, int, int]:
    """(x0, y0, side) of a square around the mouth in crop px."""
    from lipstream.realtime.avatar import RIG_FIELDS

    r = dict(zip(RIG_FIELDS, avatar.rig.tolist(), strict=True))
    side = int(r["face_h_px"] * 0.6)
    x0 = int(r["mouth_cx"] - side / 2)
    y0 = int(r["mouth_cy"] - side * 0.4)
    n = avatar.crop_px
    return max(0, min(x0, n - side)), max(0, min(y0, n - side)), side


def mouth_measures(frame: np.ndarray) -> dict[str, float]:
    """Width, opening and roundness of the mouth in a rendered frame (see the module docstring)."""
    from lipstream.avatar import detect

    lm = detect.fit_landmarks(frame, detect.detect_faces(frame)[0])[:, :2]
    eyes = float(np.linalg.norm(lm[33] - lm[263]))
    width = float(np.linalg.norm(lm[61] - lm[291]))
    return {
        "width": width / eyes,
        "opening": float(np.linalg.norm(lm[13] - lm[14])) / eyes,
        "roundness": float(np.linalg.norm(lm[0] - lm[17])) / width,
    }


def rows_for(
    photo: Path, cache: Path, framing: str, measures: dict[str, dict[str, dict[str, float]]]
) -> tuple[np.ndarray, np.ndarray]:
    """One row of frame cells and one of mouth cells for ``photo``; fills ``measures[photo]``."""
    avatar = Avatar.load(build_avatar(photo, cache_dir=cache, framing=framing).path)
    renderer = Renderer(avatar)
    mx, my, ms = _mouth_box(avatar)
    faces, mouths = [], []
    for label, mouth_params, blink in SHAPES:
        pose = FramePose(0, np.array(mouth_params, np.float32), blink=blink)
        crop = renderer.render_crop(pose)
        frame = renderer.render(pose)
        cell_h = int(round(CELL_PX * frame.shape[0] / frame.shape[1]))  # rows may differ in height
        face = cv2.resize(frame, (CELL_PX, cell_h), interpolation=cv2.INTER_AREA)
        mouth = cv2.resize(crop[my : my + ms, mx : mx + ms], (MOUTH_CELL_PX, MOUTH_CELL_PX),
                           interpolation=cv2.INTER_CUBIC)  # fmt: skip
        faces.append(_label(face, f"{photo.stem} {label}"))
        mouths.append(_label(mouth, label))
        measures.setdefault(photo.stem, {})[label] = mouth_measures(frame)
    return np.hstack(faces), np.hstack(mouths)


def relative_to_rest(measures: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict]:
    """Per shape, against the rest frame, per photo and the mean over photos.

    Width and roundness as ratios, the opening as its increase (eye distances; the rest mouth is
    shut, so a ratio says nothing).
    """
    out: dict[str, dict] = {}

    def versus_rest(shapes: dict[str, dict[str, float]], label: str) -> dict[str, float]:
        now, rest = shapes[label], shapes["rest"]
        return {
            "width": round(now["width"] / rest["width"], 3),
            "opening": round(now["opening"] - rest["opening"], 3),
            "roundness": round(now["roundness"] / rest["roundness"], 3),
        }

    for label, *_ in SHAPES:
        ratios = {photo: versus_rest(shapes, label) for photo, shapes in measures.items()}
        mean = {
            k: round(float(np.mean([r[k] for r in ratios.values()])), 3)
            for k in ("width", "opening", "roundness")
        }
        out[label] = {"mean_against_rest": mean, "by_photo": ratios}
    return out


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--framing", choices=FRAMINGS, default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    photos = sorted(
        p for p in args.photos.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}
    )
    photos.append(default_photo())  # the built-in avatar
    measures: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as cache:
        rows = [rows_for(p, Path(cache), args.framing, measures) for p in photos]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("contact_sheet.png", 0), ("contact_sheet_mouth.png", 1)):
        sheet = np.vstack([r[idx] for r in rows])
        cv2.imwrite(str(args.out / name), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        logger.info("wrote %s", args.out / name)
    shapes = relative_to_rest(measures)
    (args.out / "contact_sheet_shapes.json").write_text(json.dumps(shapes, indent=1))
    for label, row in shapes.items():
        logger.info("%-6s %s", label, row["mean_against_rest"])


if __name__ == "__main__":
    main()
