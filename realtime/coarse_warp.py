"""The generator's warp computed on a grid twice as coarse as the face crop, then upsampled.

The generator graph (``models/generator``) computes, per crop pixel, where that pixel samples the
photo's face, and over the mouth-interior band how the interior covers it. Both are smooth at the
scale of a pixel: the lips and jaw move as whole bands of rows, the head as a rigid body. So the
renderer asks the graph for every second pixel in each direction (a quarter of the pixels) and
upsamples the result bilinearly; the face itself is still sampled at full resolution by
``cv2.remap``. The graph is the same file for every avatar and every grid: the coarse grid is
just another crop whose pixel centres (map channels ``x``, ``y``) lie between the fine ones.

The upsampled quantity is the displacement (where a pixel samples, less where it is), which is 0
at the crop's edge and wherever nothing moves, so the still parts of the face stay exactly where
they were. The generator stage takes a third less (``bench/render_speed.py``, min of 300 calls:
0.97 against 1.42-1.51 ms on the built-in avatar's 172 px crop, 1.8-2.1 against 2.6-3.6 ms at
256 px), and the independent shape check on 44 s1 dev clips moves by at most 0.002 (README, "The
warp on a coarse grid"). Two things are sharp at the pixel and keep the full grid: see
``carries``.
"""

from __future__ import annotations

import cv2
import numpy as np
from lipstream.realtime.avatar import MAP_CHANNELS, RIG_FIELDS

STEP = 2  # fine pixels per coarse pixel, each way
MAX_TUCK = 0.2
"""Above this /f v/ tuck the upper teeth's edge shows as a sliver a pixel or two high, which the
coarse grid's cover blurs away (the contact sheet's /f/ lost its white line): such frames, 3 % of
real speech (LibriSpeech, the learned driver), are warped on the full grid."""
_ROW_BANDS = ("mouth", "eye", "teeth")
_X, _Y = MAP_CHANNELS.index("x"), MAP_CHANNELS.index("y")


class CoarseWarp:
    """The generator's feeds for the coarse grid of one avatar, and the upsampling of its outputs.

    Args:
        maps: the avatar's ``(len(MAP_CHANNELS), N * N)`` rig maps (N even).
        rig: its ``(len(RIG_FIELDS),)`` scalars.

    Every map channel is averaged over each 2x2 block, which puts the coarse pixel's ``x``, ``y``
    at the block's centre. The row bands of the rig (``*_row0``, ``*_row1``) are widened to whole
    coarse rows, so each band covers at least the fine rows it did.
    """

    def __init__(self, maps: np.ndarray, rig: np.ndarray) -> None:
        self.fine_px = int(round(float(rig[RIG_FIELDS.index("crop_px")])))
        if not fits(self.fine_px):
            raise ValueError(f"a {self.fine_px}px crop has no coarse grid (it must be even)")
        n, c = self.fine_px, self.fine_px // STEP
        self.coarse_px = c
        fine = maps.reshape(len(MAP_CHANNELS), n, n)
        coarse = [cv2.resize(channel, (c, c), interpolation=cv2.INTER_AREA) for channel in fine]
        self.maps = np.ascontiguousarray(np.stack(coarse).reshape(len(MAP_CHANNELS), c * c))
        self.rig = _coarse_rig(rig, c)
        # Both grids in cv2.remap's coordinates (pixel k's centre at k), as the graph's source.
        self._coarse_xy = self.maps[[_X, _Y]].reshape(2, c, c) - 0.5
        self._fine_xy = maps[[_X, _Y]].reshape(2, n, n) - 0.5

    def source(self, coarse_source: np.ndarray) -> np.ndarray:
        """The fine ``(2, N * N)`` sample points from the graph's coarse ``source`` output."""
        c, n = self.coarse_px, self.fine_px
        moved = coarse_source.reshape(2, c, c) - self._coarse_xy
        fine = np.empty((2, n, n), np.float32)
        for axis in range(2):
            cv2.resize(moved[axis], (n, n), dst=fine[axis], interpolation=cv2.INTER_LINEAR)
        fine += self._fine_xy
        return fine.reshape(2, n * n)

    def cover(
        self, coarse_cover: np.ndarray, coarse_band: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fine ``(4, B)`` interior cover and its ``(2,)`` flat band from the coarse ones.

        The coarse band is whole coarse rows (the rig was made so); it becomes twice as many
        fine rows.
        """
        c, n = self.coarse_px, self.fine_px
        row0, row1 = int(coarse_band[0]) // c, int(coarse_band[1]) // c
        rows = row1 - row0
        if rows <= 0:
            return np.zeros((4, 0), np.float32), np.array([0, 0], np.int64)
        planes = coarse_cover.reshape(4, rows, c)
        fine = [cv2.resize(p, (n, STEP * rows), interpolation=cv2.INTER_LINEAR) for p in planes]
        band = np.array([STEP * row0 * n, STEP * row1 * n], np.int64)
        return np.stack(fine).reshape(4, -1), band


def fits(crop_px: int) -> bool:
    """Whether a ``crop_px`` crop has a coarse grid: its side divides by ``STEP``.

    Builders make even crops (``avatar/framing.py``).
    """
    return crop_px % STEP == 0


def carries(blink: float, tuck: float) -> bool:
    """Whether the coarse grid draws this ``blink`` and /f v/ ``tuck`` as the full grid would.

    Not a closing lid (its edge is sharp at the pixel: the coarse blink left the eye half open),
    nor a tuck past ``MAX_TUCK``. Those frames, 7 % of real speech (4.5 % blinks), take the full
    grid (``python -m bench.coarse_warp``).
    """
    return blink == 0.0 and not tuck > MAX_TUCK


def _coarse_rig(rig: np.ndarray, coarse_px: int) -> np.ndarray:
    """The rig for the coarse grid: its side, and row bands in coarse rows (widened outwards)."""
    out = np.array(rig, dtype=np.float32, copy=True)
    out[RIG_FIELDS.index("crop_px")] = coarse_px
    for band in _ROW_BANDS:
        start, stop = RIG_FIELDS.index(band + "_row0"), RIG_FIELDS.index(band + "_row1")
        out[start] = np.floor(rig[start] / STEP)
        out[stop] = min(np.ceil(rig[stop] / STEP), coarse_px)
    return out
