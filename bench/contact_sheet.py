"""Contact sheet of rendered mouth shapes, for looking at.

Covers every photo in ../shared/photos and the built-in avatar.

Run: python bench/contact_sheet.py [--photos ../shared/photos] [--out bench/results]
    [--framing auto|photo]
Writes ``contact_sheet.png`` (whole output frames, one row per photo, one column per shape) and
``contact_sheet_mouth.png`` (the same, zoomed on the mouth).
"""

from __future__ import annotations

import argparse
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


def rows_for(photo: Path, cache: Path, framing: str) -> tuple[np.ndarray, np.ndarray]:
    """One row of frame cells and one of mouth cells for ``photo``."""
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
    return np.hstack(faces), np.hstack(mouths)


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
    with tempfile.TemporaryDirectory() as cache:
        rows = [rows_for(p, Path(cache), args.framing) for p in photos]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("contact_sheet.png", 0), ("contact_sheet_mouth.png", 1)):
        sheet = np.vstack([r[idx] for r in rows])
        cv2.imwrite(str(args.out / name), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        logger.info("wrote %s", args.out / name)


if __name__ == "__main__":
    main()
