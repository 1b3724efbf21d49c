"""Video frames for the encoders, composed in yuv420p from the generator's face crop.

The encoders want yuv420p. The background never changes, so it is converted once; each frame only
the face is converted and pasted. Where the face view is larger than the generator's crop (close-
ups, ``--framing auto``), the crop is upscaled and blended over the still frame by the avatar's
alpha. Doing that in yuv420p rather than RGB touches half the samples (chroma is 2x2 subsampled)
and converts the small crop instead of the large view: 0.4 instead of 1.3 ms per frame on the
built-in avatar (172 px crop, 368 px view; ``bench.stage_cost``). Every step is linear, so the
result is the RGB composite converted, to within rounding in luma (at most 2 levels) and, in
chroma, a few levels where the alpha edge or a sharp colour edge falls inside a 2x2 block.
``cv2.cvtColor`` (BT.601, limited range, as libswscale's default) converts; the same function
converts the background, so the colours match and no seam appears.

A pose that renders to the same picture as the last one (an idle avatar between sway steps,
``realtime/idle.py``) reuses the last composed frame: no generator run, no compose, and VP8 codes
an unchanged frame in about two thirds of the time of a moving one.
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


def frame_planes(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
    """Writable views of a yuv420p frame's Y, U and V planes (rows may be padded past the width)."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        views.append(rows[: plane.height, : plane.width])
    return tuple(views)


class FrameComposer:
    """Makes each session's yuv420p frames from its renderer; one per session, used by one thread.

    The view sits at even coordinates with an even side (``Avatar.load`` checks), so it covers
    whole 2x2 chroma blocks: each plane of the crop is upscaled to the view's size in that plane
    and blended over the still frame by the alpha (averaged over each block for chroma). The frame
    is kept between calls and only the view is written again: the rest is the still background.

    Attributes:
        reused: frames that repeated the previous picture without rendering it again.
    """

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        avatar = renderer.avatar
        self._width, self._height = avatar.frame_size
        x0, y0 = avatar.crop_xy
        view = avatar.view_px
        self._luma_at = (slice(y0, y0 + view), slice(x0, x0 + view))
        self._chroma_at = (slice(y0 // 2, (y0 + view) // 2), slice(x0 // 2, (x0 + view) // 2))
        self._upscale = avatar.crop_px != view
        self._last_pose: FramePose | None = None
        # The last frame drawn: the background until the first pose, then only its view changes.
        self._last_planes = _planes(_i420(avatar.frame), self._height, self._width)
        self.reused = 0
        alpha = np.ones((view, view), np.float32) if avatar.alpha is None else avatar.alpha
        chroma_alpha = cv2.resize(alpha, (view // 2, view // 2), interpolation=cv2.INTER_AREA)
        # Copies of the background under the view, taken before anything is drawn over it.
        self._blends = tuple(
            (np.array(plane[at]), weight, np.ascontiguousarray(1.0 - weight))
            for plane, at, weight in zip(
                self._last_planes,
                (self._luma_at, self._chroma_at, self._chroma_at),
                (alpha, chroma_alpha, chroma_alpha),
                strict=True,
            )
        )

    def frame(self, pose: FramePose) -> av.VideoFrame:
        """The frame for ``pose``, ready for any number of encoders (a new frame every call)."""
        if pose.same_picture(self._last_pose):
            self.reused += 1
        else:
            self._compose(pose)
            self._last_pose = pose
        # Copied plane by plane: 30 us, where ``VideoFrame.from_ndarray`` takes 350 us.
        frame = av.VideoFrame(self._width, self._height, "yuv420p")
        for target, source in zip(frame_planes(frame), self._last_planes, strict=True):
            target[...] = source
        return frame

    def _compose(self, pose: FramePose) -> None:
        """Renders ``pose`` into the view of the kept frame; the rest of it stays background."""
        crop = self._renderer.render_crop(pose)
        n = crop.shape[0]
        planes = zip(
            self._last_planes,
            _planes(_i420(crop), n, n),
            (self._luma_at, self._chroma_at, self._chroma_at),
            self._blends,
            strict=True,
        )
        for target, source, at, blend in planes:
            target[at] = self._face(source, blend)

    def _face(self, source: np.ndarray, blend: tuple[np.ndarray, ...]) -> np.ndarray:
        """One plane of the face view: the crop's, upscaled and blended over the still frame.

        A view the size of the crop (no alpha) is opaque: its plane is the crop's.
        """
        if not self._upscale:
            return source
        back, alpha, rest = blend
        size = (back.shape[1], back.shape[0])
        up = cv2.resize(source, size, interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(up, back, alpha, rest)
