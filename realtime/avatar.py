"""A built avatar as the renderer sees it: a background frame, a face crop and its rig, all numpy.

The builder (``lipstream.avatar``) writes one directory per photo; this module is the only reader,
so the file layout and the rig vector layout are defined here, next to the loader, and the
generator's ONNX metadata is checked against ``RIG_FIELDS`` when the renderer loads it.

Coordinates are pixels of the face crop (``crop_px`` square, origin top-left, x right, y down)
unless stated otherwise; lengths that describe the face are also given in face heights (MediaPipe
landmarks 10-152 distance), the unit of ``FramePose.mouth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 8
"""Bumped whenever the files below change meaning; cached avatars of another version are rebuilt.

7: the face view sits at even coordinates, on whole yuv420p chroma blocks.
8: the /f v/ teeth colour follows the cheeks (`avatar/rig.py` `TEETH_PER_CHEEK`)."""

MAX_OPEN = 0.15  # face heights; wider than GRID speakers open (~0.12); bounds the jaw field's rows
MAX_WIDTH = 0.1  # face heights, either way
MAX_JAW = 0.08  # face heights the chin may drop (GRID s1's widest /ay/ ~0.06); bounds the jaw rows
MIN_JAW = -0.01  # the jaw barely closes past rest
MAX_PROTRUDE = 0.03  # face heights of vermilion change either way (s1: sd 0.009)
TUCK_LIFT = 0.02  # face heights the upper lip lifts in a full /f v/ tuck, showing the teeth's edge
# Idle head motion the row bands allow for: the mouth may move MAX_HEAD_SHIFT face heights (dx, dy
# are clamped to half of it each, roll to MAX_HEAD_ROLL about a pivot below the chin).
MAX_HEAD_SHIFT = 0.04
MAX_HEAD_ROLL = 0.03  # rad

# Layout of the mouth-interior atlas (``models/generator/atlas.py`` cuts it from GRID s1): cells at
# these inner-lip openings and widths (face heights), each ROWS x COLS texels spanning the lip gap
# from the upper lip's inner edge to the lower's and T in [-ATLAS_T_SPAN, ATLAS_T_SPAN].
ATLAS_OPEN = (0.02, 0.045, 0.07, 0.095)
ATLAS_WIDTH = (-0.025, 0.0, 0.025)
ATLAS_ROWS, ATLAS_COLS = 12, 40
ATLAS_T_SPAN = 0.95
ATLAS_TEXELS = len(ATLAS_OPEN) * len(ATLAS_WIDTH) * ATLAS_ROWS * ATLAS_COLS

META_FILE = "meta.json"
ARRAYS_FILE = "arrays.npz"

RIG_FIELDS: tuple[str, ...] = (
    "crop_px",  # side of the square face crop the generator works on
    "face_h_px",  # face height (landmarks 10-152) in crop pixels
    "alpha_up",  # share of the lip opening carried by the upper lip (the jaw carries the rest)
    "mouth_cx",  # mouth centre on the closed-lip seam, crop px
    "mouth_cy",
    "right_x",  # unit vector from the right to the left mouth corner (image left -> right)
    "right_y",
    "half_w_px",  # half the outer mouth-corner distance (landmarks 61-291) at rest
    "seam_k1_px",  # closed-lip seam offset along "down" = k1 * T + k2 * T^2, T in half widths
    "seam_k2_px",
    "upper_lip_px",  # upper lip thickness (landmarks 0-13)
    "lower_lip_px",  # lower lip thickness (landmarks 14-17)
    "nose_s_px",  # signed seam distance of the nose base (landmark 2), negative
    "chin_s_px",  # signed seam distance of the chin (landmark 152), positive
    "neck_px",  # band below the chin over which the jaw drop fades out
    "jaw_half_w",  # lateral extent of the jaw drop, in mouth half widths
    "width_band_px",  # vertical extent of the lip-spreading field around the seam
    "pivot_x",  # centre of the idle head roll (below the chin), crop px
    "pivot_y",
    "teeth_r",  # upper teeth colour for a /f v/ tuck, 0..255, matched to the photo (or its teeth)
    "teeth_g",
    "teeth_b",
    "mouth_row0",  # rows [row0, row1) of the crop where the lip and jaw fields can be non-zero
    "mouth_row1",
    "eye_row0",  # rows where the eyelids can move
    "eye_row1",
    "teeth_row0",  # rows where the mouth interior can show (inside the mouth rows)
    "teeth_row1",
)
"""Order of the per-avatar scalars in ``Avatar.rig`` and the generator input ``rig``."""

MAP_CHANNELS: tuple[str, ...] = (
    "x",  # pixel centre x, crop px
    "y",  # pixel centre y, crop px
    "head_w",  # 0..1, how much of the idle head motion this pixel follows (0 at the crop edge)
    "border_w",  # 0..1, fades every displacement to zero at the crop edge so the paste is seamless
    "eye_s",  # px below the upper eyelid along "down" (far outside the eyes: large)
    "eye_h",  # eye opening at this pixel's column, px (0 outside the eyes)
    "eye_m",  # eyelid skin band above the lid that stretches over the eye when it closes, px
)
"""Channels of ``Avatar.maps`` and the generator input ``maps``."""


class AvatarFormatError(ValueError):
    """An avatar directory is missing files or was written by another format version."""


@dataclass(frozen=True)
class Avatar:
    """Everything per-avatar the renderer needs; immutable so sessions can share one instance.

    Attributes:
        avatar_id: hex content hash of the photo the avatar was built from.
        frame: ``(H, W, 3)`` uint8 RGB background frame (the framed photo, face mouth closed).
        face: ``(N, N, 3)`` uint8 RGB, the face crop (N = ``crop_px``) that the generator's
            warp samples.
        maps: ``(len(MAP_CHANNELS), N * N)`` float32 per-pixel rig maps, pixels flattened likewise.
        interior: ``(ATLAS_TEXELS, 3)`` float32 sRGB 0..255, the mouth-interior atlas recoloured
            to this photo (generator input ``interior``).
        rig: ``(len(RIG_FIELDS),)`` float32 per-avatar scalars.
        crop_xy: top-left corner ``(x, y)`` of the face view in the frame, px.
        view_px: side of the face view in frame pixels; equals ``crop_px`` unless the face is large
            (then the generator's crop is upscaled to the view and blended by ``alpha``).
        alpha: ``(view_px, view_px)`` float32 blend weight of the upscaled render, or None (1:1).
        backdrop: ``(3, view_px, view_px)`` uint8, the still frame under the view (planar), or None.
        notes: human-readable remarks from the builder (e.g. several faces found).
    """

    avatar_id: str
    frame: np.ndarray
    face: np.ndarray
    maps: np.ndarray
    rig: np.ndarray
    interior: np.ndarray
    crop_xy: tuple[int, int]
    view_px: int
    alpha: np.ndarray | None = None
    backdrop: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the output video frame in pixels (both even)."""
        return int(self.frame.shape[1]), int(self.frame.shape[0])

    @property
    def crop_px(self) -> int:
        """Side of the square face crop in pixels."""
        return int(round(float(self.rig[0])))

    @classmethod
    def load(cls, path: Path | str) -> Avatar:
        """Reads a directory written by ``lipstream.avatar.build_avatar``.

        Raises:
            AvatarFormatError: files missing, unreadable or of another ``FORMAT_VERSION``.
        """
        root = Path(path)
        try:
            meta = json.loads((root / META_FILE).read_text())
            with np.load(root / ARRAYS_FILE) as data:
                names = ("frame", "face", "maps", "rig", "interior", "alpha")
                arrays = {k: data[k] for k in names if k in data}
        except (OSError, ValueError, KeyError) as exc:
            raise AvatarFormatError(f"{root} is not a built avatar: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise AvatarFormatError(
                f"{root} has avatar format {meta.get('format_version')}, expected {FORMAT_VERSION}"
            )
        if tuple(meta.get("rig_fields", ())) != RIG_FIELDS:
            raise AvatarFormatError(f"{root} was written with another rig layout")
        return cls.from_arrays(meta, arrays)

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Avatar:
        """Builds an Avatar from the builder's in-memory result (same checks as ``load``)."""
        frame = np.ascontiguousarray(arrays["frame"], dtype=np.uint8)
        n = int(arrays["face"].shape[0])
        face = np.ascontiguousarray(arrays["face"], dtype=np.uint8)
        if face.shape != (n, n, 3):
            raise AvatarFormatError(f"face crop has shape {face.shape}, expected ({n}, {n}, 3)")
        maps = np.ascontiguousarray(arrays["maps"].reshape(-1, n * n), dtype=np.float32)
        rig = np.ascontiguousarray(arrays["rig"], dtype=np.float32)
        interior = np.ascontiguousarray(arrays["interior"], dtype=np.float32).reshape(-1, 3)
        if interior.shape != (ATLAS_TEXELS, 3):
            raise AvatarFormatError(f"interior atlas has shape {interior.shape}")
        x0, y0 = (int(v) for v in meta["crop_xy"])
        view = int(meta.get("view_px", n))
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] % 2 or frame.shape[1] % 2:
            raise AvatarFormatError(f"frame must be (even H, even W, 3), got {frame.shape}")
        if maps.shape != (len(MAP_CHANNELS), n * n) or rig.shape != (len(RIG_FIELDS),):
            raise AvatarFormatError(f"rig arrays have shapes {maps.shape}, {rig.shape}")
        if int(round(float(rig[0]))) != n:
            raise AvatarFormatError(f"rig crop_px {rig[0]} does not match the {n}px face crop")
        fh, fw = frame.shape[:2]
        if not (0 <= x0 and 0 <= y0 and x0 + view <= fw and y0 + view <= fh and view >= n):
            raise AvatarFormatError(f"face view {view}px at {(x0, y0)} leaves the frame {fw}x{fh}")
        if x0 % 2 or y0 % 2 or view % 2 or n % 2:
            raise AvatarFormatError(f"face view {view}px at {(x0, y0)} is not on even pixels")
        alpha = backdrop = None
        if view != n:
            if arrays.get("alpha") is None or arrays["alpha"].shape != (view, view):
                raise AvatarFormatError(f"a {view}px view of a {n}px crop needs a {view}px alpha")
            alpha = np.ascontiguousarray(arrays["alpha"], dtype=np.float32)
            still = frame[y0 : y0 + view, x0 : x0 + view]
            backdrop = np.ascontiguousarray(still.transpose(2, 0, 1))
        for arr in (frame, face, maps, rig, interior, alpha, backdrop):
            if arr is not None:
                arr.setflags(write=False)
        return cls(
            avatar_id=str(meta["avatar_id"]),
            frame=frame,
            face=face,
            maps=maps,
            rig=rig,
            interior=interior,
            crop_xy=(x0, y0),
            view_px=view,
            alpha=alpha,
            backdrop=backdrop,
            notes=tuple(meta.get("notes", ())),
        )
