"""``build_avatar``: one photo in, one cached avatar directory out (read by ``realtime.avatar``).

The directory is named by the SHA-256 of the photo bytes and the avatar format version. It is
written to a temporary sibling and renamed into place, so two processes building the same photo at
once both end with one complete directory and neither ever reads a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from lipstream.avatar import detect, rig
from lipstream.avatar.errors import (
    FaceTooSmallError,
    NoFaceError,
    ProfileFaceError,
)
from lipstream.avatar.framing import FRAMINGS, plan_framing, render_frame
from lipstream.realtime.avatar import ARRAYS_FILE, FORMAT_VERSION, META_FILE, RIG_FIELDS

MIN_FACE_PX = 64  # detector box width below which lips are a handful of pixels
MAX_PROFILE_ASYMMETRY = (
    0.6  # |nose-to-cheek distances, left minus right| / face width; ~50 degrees yaw
)
CACHE_ENV = "LIPSTREAM_CACHE"
PREVIEW_FILE = "preview.png"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltAvatar:
    """A built avatar on disk: ``avatar_id`` (hex SHA-256 of the photo), ``path``, ``notes``."""

    avatar_id: str
    path: Path
    notes: tuple[str, ...] = ()


def default_cache_dir() -> Path:
    """``$LIPSTREAM_CACHE/avatars``, or ``~/.cache/lipstream/avatars``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "lipstream") / "avatars"


def default_photo() -> Path:
    """The built-in avatar photo: NASA's public-domain astronaut portrait (Eileen Collins).

    The pixels of scikit-image's ``skimage/data/astronaut.png``, shipped in this package
    (``avatar/data/README.md``) so that the runtime needs neither scikit-image nor scipy.
    """
    return Path(__file__).resolve().parent / "data" / "astronaut.png"




def _avatar_dir(root: Path, avatar_id: str, framing: str) -> Path:
    suffix = "" if framing == "auto" else f"-{framing}"
    return root / f"{avatar_id}-v{FORMAT_VERSION}{suffix}"


def build_avatar(
    photo: bytes | Path,
    cache_dir: Path | None = None,
    progress: bool = False,
    framing: str = "auto",
) -> BuiltAvatar:
    """Builds (or finds in the cache) the avatar for one photo.

    Args:
        photo: image bytes or a path to an image file.
        cache_dir: where avatar directories live; default ``default_cache_dir()``.
        progress: show a progress bar on stderr (for the CLI).
        framing: ``auto`` (webcam-like head and shoulders) or ``photo`` (the photo as it is);
            each framing is cached apart.

    Raises:
        AvatarError: a subclass saying why the photo cannot work (not an image, no face, too small,
            strong profile); ``str()`` is a message for the user.
    """
    data = Path(photo).read_bytes() if isinstance(photo, Path | str) else bytes(photo)
    avatar_id = hashlib.sha256(data).hexdigest()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if framing not in FRAMINGS:
        raise ValueError(f"framing {framing!r} is not one of {FRAMINGS}")
    final = _avatar_dir(root, avatar_id, framing)
    cached = _read_cached(final, avatar_id)
    if cached is not None:
        return cached
    steps = _Progress(progress)
    rgb = detect.decode_photo(data)
    steps.advance("face detection")
    lm, notes = _find_face(rgb)
    steps.advance("framing and rig")
    meta, arrays = _make_avatar(rgb, lm, avatar_id, notes, framing)
    steps.advance("writing")
    _write_atomic(root, final, meta, arrays)
    steps.close()
    logger.info("avatar %s built in %s (%s)", avatar_id[:12], final, "; ".join(notes) or "no notes")
    return BuiltAvatar(avatar_id, final, notes)


def cached_avatar(
    avatar_id: str, cache_dir: Path | None = None, framing: str = "auto"
) -> BuiltAvatar | None:
    """The avatar already built for ``avatar_id`` in the cache, or None (also for a malformed id).

    Lets a server process use an avatar that another process built, knowing only its id.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", avatar_id):  # a SHA-256 hex digest, never a path
        return None
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _read_cached(_avatar_dir(root, avatar_id, framing), avatar_id)


def _read_cached(final: Path, avatar_id: str) -> BuiltAvatar | None:
    try:
        meta = json.loads((final / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format_version") != FORMAT_VERSION or not (final / ARRAYS_FILE).is_file():
        return None
    return BuiltAvatar(avatar_id, final, tuple(meta.get("notes", ())))


def _find_face(rgb: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Landmarks ``(478, 3)`` (photo px) of the largest face, plus notes for the user."""
    boxes = detect.detect_faces(rgb)
    if not boxes:
        raise NoFaceError("no face was found in the photo; use a clear, frontal portrait")
    notes: list[str] = []
    if len(boxes) > 1:
        notes.append(f"{len(boxes)} faces found; using the largest")
    box = boxes[0]
    if box.width < MIN_FACE_PX:
        raise FaceTooSmallError(
            f"the face is {box.width:.0f} px across; at least {MIN_FACE_PX} px are needed "
            "(use a larger or closer photo)"
        )
    lm = detect.fit_landmarks(rgb, box)
    check_frontal(lm)
    return lm, tuple(notes)


def check_frontal(lm: np.ndarray) -> None:
    """Raises ``ProfileFaceError`` when the nose sits far off the face's middle (head turned)."""
    nose, left, right = lm[rig.NOSE_TIP, 0], lm[rig.CHEEK_RIGHT_IMG, 0], lm[rig.CHEEK_LEFT_IMG, 0]
    asym = ((nose - left) - (right - nose)) / max(right - left, 1e-3)
    if abs(asym) > MAX_PROFILE_ASYMMETRY or right <= left:
        raise ProfileFaceError(
            "the face is turned too far to the side (strong profile); "
            "use a photo looking at the camera"
        )


def _make_avatar(
    rgb: np.ndarray, lm_photo: np.ndarray, avatar_id: str, notes: tuple[str, ...], mode: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """Frames the photo, closes the mouth, fits the rig; returns (meta, arrays) as stored."""
    framing = plan_framing((rgb.shape[1], rgb.shape[0]), lm_photo, mode)
    frame = render_frame(rgb, framing)
    x0, y0 = framing.view_xy
    c, n = framing.view_px, framing.crop_px
    # The mouth is closed at the frame's resolution, so the still frame around the render agrees.
    lm = lm_photo[:, :2] * framing.scale - np.array(framing.offset_xy) - np.array([x0, y0])
    view = frame[y0 : y0 + c, x0 : x0 + c].copy()
    mf = rig.mouth_frame(lm)
    lp = rig.lip_profile(lm, mf)
    teeth = rig.photo_teeth_rgb(view, lm, mf)
    view = rig.close_mouth(view, lm, mf, lp)
    frame[y0 : y0 + c, x0 : x0 + c] = view
    arrays = {"frame": frame, "landmarks": lm.astype(np.float32)}
    if n != c:
        arrays["alpha"] = rig.view_alpha(lm, c)
        view = cv2.resize(view, (n, n), interpolation=cv2.INTER_AREA)
        lm = lm * (n / c)
        mf = rig.mouth_frame(lm)
        lp = rig.lip_profile(lm, mf)
    arrays["rig"], arrays["maps"] = rig.build_rig(view, lm, mf, lp, teeth)
    arrays["interior"] = rig.interior_texture(view, lm, teeth)
    arrays["face"] = view
    meta = {
        "format_version": FORMAT_VERSION,
        "avatar_id": avatar_id,
        "notes": list(notes),
        "framing": mode,
        "frame_wh": list(framing.frame_wh),
        "crop_xy": [x0, y0],
        "view_px": c,
        "crop_px": n,
        "photo_scale": framing.scale,
        "face_h_px": rig.face_height(lm),
        "rig_fields": list(RIG_FIELDS),
        "teeth_from_photo": teeth is not None,
    }
    return meta, arrays


def _write_atomic(root: Path, final: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Writes into a temporary sibling directory, then renames it to ``final`` (first one wins)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        np.savez(tmp / ARRAYS_FILE, **arrays)
        cv2.imwrite(str(tmp / PREVIEW_FILE), cv2.cvtColor(arrays["frame"], cv2.COLOR_RGB2BGR))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META_FILE).is_file():
                raise
            logger.debug("avatar %s was built concurrently; keeping the other copy", final.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _Progress:
    """A three-step tqdm bar when asked for, otherwise nothing."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=3, desc="avatar", unit="step")

    def advance(self, what: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(what)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
