"""Renders one video frame for one pose: the generator ONNX's warp of the face crop, pasted in.

The generator graph computes where each crop pixel samples the face and which texel of the mouth
interior shows in the lip gap; ``apply_generator`` does the sampling (``cv2.remap``) and painting.

One ``onnxruntime.InferenceSession`` per (model, threads, providers) is shared by every renderer in
the process (``realtime/onnx_session.py``); ``InferenceSession.run`` is thread-safe, and everything
per avatar is read-only numpy, so any number of sessions may call ``Renderer.render`` at once from
their own threads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from lipstream.realtime.avatar import MAP_CHANNELS, RIG_FIELDS, Avatar
from lipstream.realtime.coarse_warp import CoarseWarp, carries, fits
from lipstream.realtime.onnx_session import onnx_session
from lipstream.realtime.pose import MOUTH_PARAMS, N_MOUTH_PARAMS, FramePose

GENERATOR_ONNX = Path(__file__).resolve().parents[1] / "models" / "generator" / "generator.onnx"
POSE_FIELDS: tuple[str, ...] = (*MOUTH_PARAMS, "blink", "head_dx", "head_dy", "head_roll")
"""Order of the generator input ``pose`` (checked against the model's metadata at load)."""
GENERATOR_OUTPUTS: tuple[str, ...] = ("source", "cover", "texture", "tint", "band")
"""The generator's outputs, in order (``models/generator/model.py`` ``Generator.forward``)."""
_TUCK = MOUTH_PARAMS.index("tuck")
TEETH_PER_HALF_WIDTH = 3.0  # incisor, lateral incisor, canine: the dark lines between them

logger = logging.getLogger(__name__)


class GeneratorContractError(RuntimeError):
    """The generator ONNX was exported for another rig, map or pose layout than this code's."""


def generator_session(
    path: Path = GENERATOR_ONNX, threads: int = 1, providers: list[str] | None = None
) -> ort.InferenceSession:
    """The process-wide session for ``path`` with ``threads`` intra-op threads (created once).

    Raises:
        GeneratorContractError: the model's metadata differs from ``RIG_FIELDS``/``MAP_CHANNELS``.
    """
    session = onnx_session(path, threads, providers)
    if path.name == GENERATOR_ONNX.name:
        _check_contract(session, path)
    return session


def _check_contract(session: ort.InferenceSession, path: Path) -> None:
    meta = session.get_modelmeta().custom_metadata_map
    expected = {
        "rig_fields": ",".join(RIG_FIELDS),
        "map_channels": ",".join(MAP_CHANNELS),
        "pose_fields": ",".join(POSE_FIELDS),
        "outputs": ",".join(GENERATOR_OUTPUTS),
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise GeneratorContractError(
                f"{path}: metadata {key}={meta.get(key)!r}, expected {value!r}"
            )


def apply_generator(
    face: np.ndarray,
    source: np.ndarray,
    cover: np.ndarray,
    texture: np.ndarray,
    tint: np.ndarray,
    band: np.ndarray,
) -> np.ndarray:
    """The rendered crop: ``face`` sampled at ``source``, the lip gap painted; ``(N, N, 3)`` uint8.

    Args:
        face: ``(N, N, 3)`` uint8 RGB, the face crop the generator's maps were built for.
        source: the generator's ``(2, N * N)`` sample points for one pose.
        cover: its ``(4, B)`` interior coverage, texel x, y and resting T over the band.
        texture: its ``(ROWS, COLS, 3)`` atlas slice for the pose.
        tint: its upper-teeth RGB and /f v/ tuck ``(4,)``.
        band: its ``(2,)`` flat pixel range of that band.

    Bilinear, edges repeated (cv2 weighs in 1/32 px steps). Only the pixels the interior covers
    are painted, a few hundred of the band, so the texels are looked up here rather than for the
    whole band in the graph.
    """
    n = face.shape[0]
    out = cv2.remap(
        np.ascontiguousarray(face),
        source[0].reshape(n, n),
        source[1].reshape(n, n),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    inside = np.flatnonzero(cover[0] > 0.0)
    if inside.size == 0:
        return out
    mask, tex_x, tex_y, t_rest = cover[:, inside]
    colour = cv2.remap(
        np.ascontiguousarray(texture, dtype=np.float32),
        np.ascontiguousarray(tex_x[None]),
        np.ascontiguousarray(tex_y[None]),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )[0]
    # A /f v/ tuck opens only a sliver under the upper lip: the upper teeth's edge fills it.
    teeth = tint[None, :3] * _teeth_shade(t_rest)[:, None]
    colour += tint[3] * (teeth - colour)
    flat = out.reshape(-1, 3)
    at = int(band[0]) + inside
    part = flat[at].astype(np.float32)
    part += mask[:, None] * (colour - part)
    flat[at] = np.clip(part + 0.5, 0.0, 255.0).astype(np.uint8)
    return out


def _teeth_shade(t_rest: np.ndarray) -> np.ndarray:
    """Brightness of the upper teeth at T along the resting mouth.

    Darker to the corners, with a dark line between neighbouring teeth (incisor, lateral incisor,
    canine per half width).
    """
    side = np.clip(1.0 - t_rest * t_rest, 0.0, 1.0)
    lines = 1.0 - 0.3 * np.exp(-(np.sin(np.pi * TEETH_PER_HALF_WIDTH * t_rest) ** 2) / 0.015)
    return (0.55 + 0.45 * side) * lines


def spread_gain(session: ort.InferenceSession) -> float:
    """How many times the pose's positive width the generator spreads the lips (1 if unsaid).

    The generator draws spreading stronger than measured, for photos; re-lipping real footage
    (``dub/retarget.py``) divides it back out, since there the width is a measured change.
    """
    return float(session.get_modelmeta().custom_metadata_map.get("spread_gain", "1.0"))


class Renderer:
    """Turns ``FramePose`` into full RGB frames of one avatar.

    Args:
        avatar: the loaded avatar (shared, read-only).
        threads: onnxruntime intra-op threads for the generator (size for N sessions on the cores).
        providers: onnxruntime execution providers; default CPU.
        coarse: compute the warp on a grid twice as coarse and upsample it
            (``realtime/coarse_warp.py``; a third less CPU a render). False, or a crop of odd
            side, asks the graph for every pixel.
    """

    def __init__(
        self,
        avatar: Avatar,
        threads: int = 1,
        providers: list[str] | None = None,
        coarse: bool = True,
    ) -> None:
        self.avatar = avatar
        self._session = generator_session(GENERATOR_ONNX, threads, providers)
        x0, y0 = avatar.crop_xy
        view = avatar.view_px
        self._rows = slice(y0, y0 + view)
        self._cols = slice(x0, x0 + view)
        self._blend: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if avatar.alpha is not None and avatar.backdrop is not None:
            # Close-ups: the crop is upscaled to the view and blended over the still frame there.
            # cv2 does it in ~1 ms at 368 px; an ONNX Resize + blend graph took ~5 ms.
            backdrop = np.ascontiguousarray(avatar.backdrop.transpose(1, 2, 0))
            self._blend = (backdrop, avatar.alpha, np.ascontiguousarray(1.0 - avatar.alpha))
        self._feed_static = {
            "maps": avatar.maps,
            "rig": avatar.rig,
            "interior": avatar.interior,
        }
        self._coarse: tuple[CoarseWarp, dict[str, np.ndarray]] | None = None
        if coarse and fits(avatar.crop_px):
            grid = CoarseWarp(avatar.maps, avatar.rig)
            self._coarse = (grid, {**self._feed_static, "maps": grid.maps, "rig": grid.rig})

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames ``render`` returns, px (even)."""
        return self.avatar.frame_size

    def render_crop(self, pose: FramePose) -> np.ndarray:
        """The generator's face crop alone, ``(N, N, 3)`` uint8 RGB (N = ``avatar.crop_px``)."""
        head = np.asarray(pose.head, dtype=np.float32).reshape(3)
        mouth = np.zeros(N_MOUTH_PARAMS, np.float32)
        given = np.asarray(pose.mouth, dtype=np.float32).reshape(-1)[:N_MOUTH_PARAMS]
        mouth[: len(given)] = given  # a driver with fewer columns (open only) leaves the rest 0
        vec = np.concatenate([mouth, np.array([pose.blink, *head[:3]], np.float32)])
        vec = np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)
        grid: CoarseWarp | None = None
        feed = self._feed_static
        if self._coarse is not None and carries(pose.blink, float(mouth[_TUCK])):
            grid, feed = self._coarse
        source, cover, texture, tint, band = self._session.run(None, {**feed, "pose": vec})
        if grid is not None:
            source = grid.source(source)
            cover, band = grid.cover(cover, band)
        return apply_generator(self.avatar.face, source, cover, texture, tint, band)

    def render_view(self, pose: FramePose) -> np.ndarray:
        """The face view as pasted into the frame, ``(V, V, 3)`` uint8 (V = ``avatar.view_px``)."""
        crop = self.render_crop(pose)
        if self._blend is None:
            return crop
        backdrop, alpha, rest = self._blend
        view = self.avatar.view_px
        up = cv2.resize(crop, (view, view), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(up, backdrop, alpha, rest)

    def render(self, pose: FramePose) -> np.ndarray:
        """The full composited frame ``(H, W, 3)`` uint8 RGB for ``pose``; deterministic.

        Safe to call from several threads at once. Costs one generator run (plus, for close-ups, an
        upscale and blend of the view) and one frame copy.
        """
        view = self.render_view(pose)
        frame = self.avatar.frame.copy()
        frame[self._rows, self._cols] = view
        return frame
