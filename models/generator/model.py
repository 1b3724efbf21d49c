"""The talking-head generator: a dense backward warp of the face crop, a synthetic mouth interior.

It has no learned weights. Everything per avatar arrives as inputs (per-pixel rig maps, a rig
vector, the recoloured interior atlas; layouts in ``lipstream.realtime.avatar``), everything per
frame as ``pose``, so one exported graph serves every avatar and the renderer shares one ONNX
session between sessions.

Per output pixel p (crop px) the graph computes the source point where the renderer samples the
face crop (``realtime/render.py``, ``cv2.remap``):

1. idle head motion: q = p - head_w * (translation + roll about the pivot);
2. mouth frame of q: T (along the corner axis, in half widths), S (px below the closed seam);
3. lips: above the seam the upper lip moves up by alpha*g*sh(T) (rigid over its thickness, fading to
   the nose); below, the lower lip moves down by (1-alpha)*g*sh(T) and the chin by the jaw drop
   (fading over the neck); the field is discontinuous at the seam, so the lips part instead of
   stretching;
4. lip spreading: a horizontal field moves the corners by +-width/2;
5. blink: a 1-D remap along "down" stretches the upper-lid skin down over the eye;
6. the gap between the lips (exactly where step 3 opened it) shows the mouth-interior atlas cut
   from GRID s1 (``atlas.py``), recoloured to the photo by the builder; a /f v/ tuck shows the
   upper teeth's edge instead. The graph says which texel each gap pixel shows; the renderer
   looks it up and paints.
"""

from __future__ import annotations

import torch
from lipstream.realtime.avatar import (
    ATLAS_COLS,
    ATLAS_OPEN,
    ATLAS_ROWS,
    ATLAS_T_SPAN,
    ATLAS_WIDTH,
    MAP_CHANNELS,
    MAX_HEAD_ROLL,
    MAX_HEAD_SHIFT,
    MAX_JAW,
    MAX_OPEN,
    MAX_PROTRUDE,
    MAX_WIDTH,
    MIN_JAW,
    RIG_FIELDS,
    TUCK_LIFT,
)
from torch import nn

# Corner displacement per unit of negative width (rounding), see _mouth_geometry. 1.8 -> 2.5: the
# independent shape_eval on 44 s1 dev clips, width r 0.542 -> 0.563 (gap exponent 1.5 in both).
ROUND_GAIN = 2.5
ROUND_FULL = 0.04  # width (face heights, negative) at which the gap is fully gathered into an oval
ROUND_GATHER = 2.0  # extra exponent of the gap profile when fully rounded
# The lip gap's profile across the mouth, (1 - T^2)^e. A real inner-lip gap is a lens, thin at the
# corners; an ellipse (0.5) ran its full dark height out to them. 0.5 -> 1.5 (rounding gain 1.8):
# shape_eval, 44 s1 dev clips, mouth-crop SSIM 0.827 -> 0.836, opening r 0.846 -> 0.849.
GAP_EXPONENT = 1.5
ROUND_PURSE = 0.5  # share of each vermilion height added when fully rounded
# Spreading is drawn stronger than measured, as rounding is: s1's /iy/ widens the mouth by ~1 % of
# the face height (its 90th percentile), half a pixel at each corner of a 100 px face, which no one
# sees; other speakers spread far more. The stretched lips also thin, as real spread lips do.
SPREAD_GAIN = 3.0
SPREAD_FULL = 0.03  # width (face heights, after the gain) at which the lips are fully thinned
SPREAD_THIN = 0.15  # share of each vermilion height a full spread stretches away
PROTRUDE_GAIN = 0.8  # vermilion height added to each lip per unit of protrude (0.5 = as measured)
# The motion model's openings regress to the mean (MSE); drawn 1.25x, small openings read as open
# to MediaPipe: rendered r 0.821 -> 0.829 on 8 dev clips, mouth-crop SSIM 0.824 -> 0.815 (1.4x:
# 0.832, 0.807). bench/face_shape.py --limit 8.
OPEN_GAIN = 1.25
SHUT_FROM, SHUT_FULL = 0.7, 1.0  # press/tuck range over which the lips close (motion CARD: why)
PRESS_ROLL = 0.45  # share of each vermilion height a full bilabial press rolls in
TUCK_ROLL = 0.6  # share of the lower vermilion a full labiodental tuck hides under the teeth
MAX_BLINK = 0.97  # a fully shut lid would divide by zero in the eye remap

_R = {name: i for i, name in enumerate(RIG_FIELDS)}
_M = {name: i for i, name in enumerate(MAP_CHANNELS)}


def _channel(
    maps: torch.Tensor, name: str, start: torch.Tensor, stop: torch.Tensor
) -> torch.Tensor:
    """Map channel ``name`` over the flat pixels ``[start, stop)``, copying only those."""
    # One slice of the flattened maps: slicing the 2-D tensor by row first copies the whole row.
    offset = _M[name] * maps.shape[1]
    return maps.reshape(-1)[offset + start : offset + stop]


def _ramp(x: torch.Tensor) -> torch.Tensor:
    """Clamps to [0, 1]: a one-unit linear edge, used for 1-px anti-aliased masks and fades."""
    return torch.clamp(x, 0.0, 1.0)


class Generator(nn.Module):
    """Renders one face crop for one pose; inputs and output as documented in ``CARD.md``."""

    def forward(
        self,
        maps: torch.Tensor,
        rig: torch.Tensor,
        pose: torch.Tensor,
        interior: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The warp and the mouth interior's geometry for one crop; the renderer applies them.

        Returns:
            source: ``(2, P)`` float32, x and y of the face-crop point each output pixel samples,
                in pixel-index coordinates (pixel k's centre is at k), ready for ``cv2.remap``.
            cover: ``(4, B)`` float32 over the interior band's B pixels: how much the interior
                covers the warped face (0..1), the texel x and y it shows (texel-index coordinates
                of ``texture``) and T, the pixel's place along the resting mouth (half widths),
                which spaces the teeth.
            texture: ``(ATLAS_ROWS, ATLAS_COLS, 3)`` float32, this pose's atlas slice (0..255).
            tint: ``(4,)`` float32, the upper teeth's RGB and how far a /f v/ tuck shows them.
            band: ``(2,)`` int64, the interior band's flat pixel range ``[start, stop)``.

        No pixel is sampled in the graph: it computes where to sample, the renderer samples. A
        gather, four-tap lerp and re-layout of ``(P, 3)`` took 1 ms of the graph's 3.2 ms on a
        172 px crop where ``cv2.remap`` takes 0.1 ms; the interior's four texel gathers over the
        whole band took a quarter of the rest, for the few hundred pixels a lip gap covers.
        Per-pixel tensors are 1-D ``(P,)``: onnxruntime's broadcasting of scalars against a
        trailing axis of length 1 is an order of magnitude slower than against a flat axis. Map
        channels are sliced to the rows that use them: indexing a whole channel copies it.
        """
        r = {name: rig[i] for name, i in _R.items()}
        n = r["crop_px"]
        blink = pose[6]
        q_x, q_y = self._head(maps, r, pose)
        # The lips, the eyes and the mouth interior change only in three bands of rows (set by the
        # builder); a band of rows is a contiguous slice of the flat pixels, so only it is computed.
        m0, m1 = self._band(r, "mouth", n)
        geo = self._mouth_geometry(r, pose, q_x[m0:m1], q_y[m0:m1])
        band_x, band_y = self._mouth_source(r, geo, q_x[m0:m1], q_y[m0:m1])
        bw = _channel(maps, "border_w", m0, m1)
        band_x = q_x[m0:m1] + bw * (band_x - q_x[m0:m1])
        band_y = q_y[m0:m1] + bw * (band_y - q_y[m0:m1])
        src_x = torch.cat([q_x[:m0], band_x, q_x[m1:]])
        src_y = torch.cat([q_y[:m0], band_y, q_y[m1:]])
        e0, e1 = self._band(r, "eye", n)
        shift = self._blink_shift(maps, e0, e1, blink, q_y[e0:e1])
        src_y = torch.cat([src_y[:e0], src_y[e0:e1] + shift, src_y[e1:]])
        t0, t1 = self._band(r, "teeth", n)
        inner = {k: (v[t0 - m0 : t1 - m0] if v.dim() == 1 else v) for k, v in geo.items()}
        mask = self._interior_mask(inner) * _channel(maps, "border_w", t0, t1)
        texture, tex_x, tex_y = self._atlas(interior, inner, pose)
        # A /f v/ tuck opens only a sliver under the upper lip: the upper teeth's edge fills it.
        tint = torch.stack([r["teeth_r"], r["teeth_g"], r["teeth_b"], inner["tuck"]])
        # The maps hold pixel centres (k + 0.5); cv2.remap addresses pixel k's centre as k.
        source = torch.stack([src_x - 0.5, src_y - 0.5])
        cover = torch.stack([mask, tex_x, tex_y, inner["t_rest"]])
        return source, cover, texture, tint, torch.stack([t0, t1])

    @staticmethod
    def _band(r: dict, name: str, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat pixel range ``[start, stop)`` of the rows ``<name>_row0 .. <name>_row1``."""
        start = (r[name + "_row0"] * n).to(torch.int64)
        stop = (r[name + "_row1"] * n).to(torch.int64)
        return start, stop

    @staticmethod
    def _head(maps: torch.Tensor, r: dict, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Undoes the idle head motion: where pixel p was before the head moved (crop px)."""
        h = r["face_h_px"]
        # Clamped so the lips and eyes stay inside the row bands the builder sized for them.
        roll = torch.clamp(pose[9], -MAX_HEAD_ROLL, MAX_HEAD_ROLL)
        shift_x = torch.clamp(pose[7], -0.5 * MAX_HEAD_SHIFT, 0.5 * MAX_HEAD_SHIFT) * h
        shift_y = torch.clamp(pose[8], -0.5 * MAX_HEAD_SHIFT, 0.5 * MAX_HEAD_SHIFT) * h
        cos, sin = torch.cos(roll), torch.sin(roll)
        x, y, head_w = maps[_M["x"]], maps[_M["y"]], maps[_M["head_w"]]
        rel_x, rel_y = x - r["pivot_x"], y - r["pivot_y"]
        dx = shift_x + (cos - 1.0) * rel_x - sin * rel_y
        dy = shift_y + sin * rel_x + (cos - 1.0) * rel_y
        return x - head_w * dx, y - head_w * dy

    @staticmethod
    def _mouth_geometry(r: dict, pose: torch.Tensor, q_x: torch.Tensor, q_y: torch.Tensor) -> dict:
        """Mouth-frame coordinates of q and the lip/jaw displacements for this pose (px)."""
        h0 = r["face_h_px"]
        alpha = r["alpha_up"]
        press = torch.clamp(pose[4], 0.0, 1.0)
        tuck = torch.clamp(pose[5], 0.0, 1.0)
        # A bilabial or labiodental closes the lips whatever the opening says.
        # Only a confident gesture shuts them: the model's press/tuck blur into neighbouring vowels.
        shut = _ramp((torch.maximum(press, tuck) - SHUT_FROM) / (SHUT_FULL - SHUT_FROM))
        o = torch.clamp(OPEN_GAIN * pose[0], 0.0, MAX_OPEN) * (1.0 - shut)
        jaw_px = torch.clamp(pose[2], MIN_JAW, MAX_JAW) * h0
        # The measured opening is over the rendered face height, which grows as the chin drops.
        gap = o * (h0 + jaw_px)
        h_now = h0 + jaw_px
        width = torch.clamp(pose[1], -MAX_WIDTH, MAX_WIDTH)
        # Rounding and spreading are drawn stronger than measured: s1's /uw/ narrows the mouth by
        # only ~9 %, which reads as a slit on a photo, and its /iy/ widens it by ~2 %; correlation
        # with the real width does not depend on the gains.
        width = torch.where(width < 0.0, ROUND_GAIN * width, SPREAD_GAIN * width)
        corner = width * h_now * 0.5
        rx, ry = r["right_x"], r["right_y"]
        u = (q_x - r["mouth_cx"]) * rx + (q_y - r["mouth_cy"]) * ry
        v = -(q_x - r["mouth_cx"]) * ry + (q_y - r["mouth_cy"]) * rx
        half_w = r["half_w_px"] + corner
        t_now = u / half_w
        t_c = torch.clamp(t_now, -1.0, 1.0)
        s = v - (r["seam_k1_px"] * t_c + r["seam_k2_px"] * t_c * t_c)
        # Elliptic lip gap across the mouth; rounded lips (negative width) gather the opening into
        # the middle, an oval rather than a slit.
        rounding = _ramp(-pose[1] / ROUND_FULL)
        shape = torch.pow(_ramp(1.0 - t_now * t_now), GAP_EXPONENT + ROUND_GATHER * rounding)
        t_jaw = t_now / r["jaw_half_w"]
        jaw = _ramp(1.0 - t_jaw * t_jaw)
        # Vermilion heights: protrusion shows more red on both lips, a press rolls both in, a tuck
        # rolls the lower lip under the upper teeth (and lifts the upper lip to show their edge).
        pro = torch.clamp(pose[3], -MAX_PROTRUDE, MAX_PROTRUDE) * h0 * PROTRUDE_GAIN
        up_lip, lo_lip = r["upper_lip_px"], r["lower_lip_px"]
        # Rounded lips also purse: both lips bunch up along the whole mouth, corners included.
        along = torch.sqrt(_ramp(1.0 - 0.8 * t_now * t_now))
        purse = ROUND_PURSE * rounding * along
        # Spread lips stretch thinner along the whole mouth.
        thin = SPREAD_THIN * _ramp(width / SPREAD_FULL) * along
        d_up = (pro - PRESS_ROLL * press * up_lip) * shape + (purse - thin) * up_lip
        d_lo = (pro - PRESS_ROLL * press * lo_lip - TUCK_ROLL * tuck * lo_lip) * shape
        d_lo = d_lo + (purse - thin) * lo_lip
        lift = TUCK_LIFT * tuck * h0 * shape
        return {
            "u": u, "s": s, "t": t_now, "t_rest": u / r["half_w_px"], "corner": corner,
            "up": alpha * gap * shape + lift, "lo": (1.0 - alpha) * gap * shape,
            "jaw": jaw_px * jaw, "jaw_c": jaw_px, "gap": gap + lift,
            "up_lip": torch.clamp(up_lip + d_up, min=0.35 * up_lip),
            "lo_lip": torch.clamp(lo_lip + d_lo, min=0.3 * lo_lip),
            "press": press * shape, "tuck": tuck,
        }  # fmt: skip

    @staticmethod
    def _mouth_source(
        r: dict, g: dict, q_x: torch.Tensor, q_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Source point of q under the lip, jaw and spreading fields (crop px).

        Along the mouth's "down" axis, per column: the upper lip (rest thickness U, now U') sits
        above the opening and is resampled over its new thickness; the skin above it stretches
        linearly to the nose. Below, the lower lip (L -> L') rides on its share of the opening,
        the displacement blends into the jaw drop over the chin's upper half, the chin moves
        rigidly and the drop fades over the neck. Nothing moves beyond the nose or the neck.
        """
        s, up, lo = g["s"], g["up"], g["lo"]
        up_lip, lo_lip = r["upper_lip_px"], r["lower_lip_px"]
        new_up, new_lo = g["up_lip"], g["lo_lip"]
        nose = -r["nose_s_px"]  # > 0
        # Upper side (output s < 0): the lip [-(up + U'), -up] samples [-U, 0].
        edge = -(up + new_up)
        src_lip_up = (s + up) * (up_lip / new_up)
        d_border = edge + up_lip  # displacement at the lip's outer edge (output - source)
        w_up = _ramp((s + nose) / torch.clamp(edge + nose, min=1.0))
        src_up = torch.where(s >= edge, src_lip_up, s - d_border * w_up)
        # Lower side: the lip [lo, lo + L'] samples [0, L].
        border = lo + new_lo
        src_lip_lo = (s - lo) * (lo_lip / new_lo)
        d_lo = border - lo_lip
        blend_len = torch.clamp(0.5 * (r["chin_s_px"] - lo_lip), min=lo_lip)
        a = _ramp((s - border) / blend_len)
        drop = d_lo + a * (g["jaw"] - d_lo)
        w_lo = _ramp(1.0 - (s - r["chin_s_px"] - g["jaw"]) / r["neck_px"])
        src_lo = torch.where(s <= border, src_lip_lo, s - drop * w_lo)
        src_s = torch.where(s < 0.0, src_up, src_lo)
        dv = src_s - s  # source offset along "down"
        # Spreading: corners move by `corner`, the lips stretch uniformly, cheeks fade out.
        t = g["t"]
        band = _ramp(1.5 - torch.abs(s) / r["width_band_px"])
        du = -g["corner"] * torch.clamp(t, -1.0, 1.0) * _ramp(2.0 - torch.abs(t)) * band
        rx, ry = r["right_x"], r["right_y"]
        return q_x + du * rx - dv * ry, q_y + du * ry + dv * rx

    @staticmethod
    def _blink_shift(
        maps: torch.Tensor,
        e0: torch.Tensor,
        e1: torch.Tensor,
        blink: torch.Tensor,
        q_y: torch.Tensor,
    ) -> torch.Tensor:
        """Vertical source shift (px) in the eye rows ``[e0, e1)`` closing the lids by ``blink``."""
        b = torch.clamp(blink, 0.0, MAX_BLINK)
        # The eye maps are sampled at p; the head moved the eye by (q - p), mostly along y.
        s = _channel(maps, "eye_s", e0, e1) + (q_y - _channel(maps, "y", e0, e1))
        h, lid = _channel(maps, "eye_h", e0, e1), _channel(maps, "eye_m", e0, e1)
        low = b * h
        # The lid skin stretches down over the eye; the eye below the lid edge stays put (squeezing
        # it instead aliases the iris into a sawtooth when nearly shut).
        lid_src = -lid + (s + lid) * lid / (lid + low)
        covered = (s >= -lid) & (s < low)
        return torch.where(covered, lid_src - s, torch.zeros_like(s))

    @staticmethod
    def _atlas(
        interior: torch.Tensor, g: dict, pose: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This pose's atlas slice ``(ROWS, COLS, 3)`` and the texel x, y each band pixel shows.

        The atlas is ``(N_OPEN, N_WIDTH, ROWS, COLS)`` texels (``atlas.py``): the four cells around
        the pose's (open, width) are blended into one ``ROWS x COLS`` slice. A pixel shows it at
        (F, T): F runs 0..1 from the upper lip's inner edge to the lower's, T from corner to corner.
        """
        n_open, n_width = len(ATLAS_OPEN), len(ATLAS_WIDTH)
        cube = interior.reshape(n_open, n_width, ATLAS_ROWS * ATLAS_COLS * 3)
        ko = torch.clamp((pose[0] - ATLAS_OPEN[0]) / (ATLAS_OPEN[1] - ATLAS_OPEN[0]), 0.0,
                         n_open - 1.0)  # fmt: skip
        kw = torch.clamp((pose[1] - ATLAS_WIDTH[0]) / (ATLAS_WIDTH[1] - ATLAS_WIDTH[0]), 0.0,
                         n_width - 1.0)  # fmt: skip
        o0 = torch.clamp(torch.floor(ko), max=n_open - 2.0)
        w0 = torch.clamp(torch.floor(kw), max=n_width - 2.0)
        fo, fw = ko - o0, kw - w0
        rows = cube.index_select(0, torch.stack([o0, o0 + 1.0]).to(torch.int64))
        by_open = rows[0] + fo * (rows[1] - rows[0])  # (n_width, texels * 3)
        cols = by_open.index_select(0, torch.stack([w0, w0 + 1.0]).to(torch.int64))
        texture = (cols[0] + fw * (cols[1] - cols[0])).reshape(ATLAS_ROWS, ATLAS_COLS, 3)
        s, up, lo = g["s"], g["up"], g["lo"]
        f = (s + up) / torch.clamp(up + lo, min=1.0)
        y = torch.clamp(f * ATLAS_ROWS - 0.5, 0.0, ATLAS_ROWS - 1.0)
        x = torch.clamp((g["t"] / ATLAS_T_SPAN + 1.0) * 0.5 * ATLAS_COLS - 0.5, 0.0,
                        ATLAS_COLS - 1.0)  # fmt: skip
        return texture, x, y

    @staticmethod
    def _interior_mask(g: dict) -> torch.Tensor:
        """How much of each band pixel lies in the lip gap, (B,) 0..1 (a 1 px anti-aliased edge)."""
        s, up, lo = g["s"], g["up"], g["lo"]
        return _ramp(torch.minimum(s + up, lo - s))  # px from the nearer lip edge
