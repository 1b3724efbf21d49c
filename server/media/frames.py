"""Video frames for the encoders, made by converting only the part of the picture that changes.

The encoders want yuv420p. ``frame.reformat`` on a fresh frame builds a new libswscale context each
time: 2.8 ms per 512x512 frame. Since the background never changes, it is converted once and only
the rendered face view is converted and pasted. ``cv2.cvtColor`` (BT.601, limited range, as
libswscale's default) converts the 368 px view in 0.15-0.19 ms, where a kept libswscale context
took 0.9-1.0 ms (its rgb24 input path is not vectorised); the two differ by at most 1 in luma and 4
in chroma. The same function converts both parts, so their colours match and no seam appears.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer


def _i420(image: np.ndarray) -> np.ndarray:
    """(H * 3 / 2, W) uint8: the Y plane, then U and V, as PyAV lays out yuv420p arrays."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)


def _planes(i420: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Views of the Y, U and V planes inside a contiguous I420 array (even height and width)."""
    flat = i420.reshape(-1)
    luma, chroma = height * width, (height // 2) * (width // 2)
    y = flat[:luma].reshape(height, width)
    u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
    return y, u, v


class FrameComposer:
    """Makes each session's yuv420p frames from its renderer; one per session, used by one thread.

    The face view is pasted into a patch of the background widened to even coordinates (chroma is
    subsampled 2x2), and that patch alone is converted.
    """

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        avatar = renderer.avatar
        self._width, self._height = avatar.frame_size
        x0, y0 = avatar.crop_xy
        view = avatar.view_px
        self._left, self._top = x0 - x0 % 2, y0 - y0 % 2
        right, bottom = x0 + view + (x0 + view) % 2, y0 + view + (y0 + view) % 2
        self._patch_rgb = avatar.frame[self._top : bottom, self._left : right].copy()
        self._view_at = (y0 - self._top, x0 - self._left, view)
        self._background = _i420(avatar.frame)

    def frame(self, pose: FramePose) -> av.VideoFrame:
        """The frame for ``pose``, ready for any number of encoders."""
        row, col, view = self._view_at
        patch = self._patch_rgb.copy()
        patch[row : row + view, col : col + view] = self._renderer.render_view(pose)
        height, width = patch.shape[:2]
        out = self._background.copy()
        targets = _planes(out, self._height, self._width)
        sources = _planes(_i420(patch), height, width)
        for plane, (target, source) in enumerate(zip(targets, sources, strict=True)):
            scale = 1 if plane == 0 else 2
            x, y = self._left // scale, self._top // scale
            target[y : y + source.shape[0], x : x + source.shape[1]] = source
        return av.VideoFrame.from_ndarray(out, format="yuv420p")
