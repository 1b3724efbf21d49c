"""Blinks and small head motion, so a silent avatar looks alive rather than frozen.

Both are pure functions of the frame index, so a replayed session (or ``lipstream render``) blinks
at the same frames, and there is no state to carry or reset.

The sway is sampled every ``HEAD_STEP_S``, not every frame: it moves the face by at most 0.2 px a
step (0.0058 face heights/s at most, a face of 200 px), which no one sees, and a silent avatar
whose pose does not change between frames need not be rendered again (``server/media/frames.py``
reuses the picture): with the blinks, 3 in 4 idle frames.
"""

from __future__ import annotations

import numpy as np

BLINK_SLOT_S = 4.0  # one blink per slot, at a pseudo-random offset: 2-6 s apart, as people blink
BLINK_DURATION_S = 0.18  # eyelids close and reopen in ~180 ms
HEAD_SWAY_FACE_HEIGHTS = 0.006  # idle translation amplitude; more reads as a bobbing head
HEAD_ROLL_RAD = 0.012  # ~0.7 degrees
SWAY_PERIODS_S = (5.3, 7.9, 11.3)  # incommensurate, so the motion never visibly loops
HEAD_STEP_S = 0.16  # the sway's sample period: four 25 fps frames (module docstring)


def _slot_offset_s(slot: int, seed: int) -> float:
    """Deterministic pseudo-random blink time inside one slot (a small integer hash, no RNG
    state)."""
    h = (slot * 2654435761 + seed * 40503) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 2246822519) & 0xFFFFFFFF
    h ^= h >> 13
    return 0.3 + (h % 1000) / 1000.0 * (BLINK_SLOT_S - 0.3 - BLINK_DURATION_S)


def blink_at(time_s: float, seed: int = 0) -> float:
    """Eyelid closure 0..1 at ``time_s``: a smooth close-and-open once per slot."""
    slot = int(time_s // BLINK_SLOT_S)
    phase = (time_s - slot * BLINK_SLOT_S - _slot_offset_s(slot, seed)) / BLINK_DURATION_S
    if not 0.0 <= phase <= 1.0:
        return 0.0
    return float(np.sin(np.pi * phase) ** 2)


def head_at(time_s: float, seed: int = 0) -> np.ndarray:
    """Idle head pose ``(3,)`` float32: dx, dy in face heights and roll in radians.

    The same sway plays whether or not someone speaks: switching amplitude with the speech flag
    would make the head jump.
    """
    p1, p2, p3 = SWAY_PERIODS_S
    t = np.floor(time_s / HEAD_STEP_S) * HEAD_STEP_S + seed * 1.7
    dx = np.sin(2 * np.pi * t / p1) + 0.5 * np.sin(2 * np.pi * t / p3)
    dy = np.sin(2 * np.pi * t / p2 + 1.0)
    roll = np.sin(2 * np.pi * t / p3 + 2.0)
    pose = [dx * HEAD_SWAY_FACE_HEIGHTS / 1.5, dy * HEAD_SWAY_FACE_HEIGHTS, roll * HEAD_ROLL_RAD]
    return np.asarray(pose, dtype=np.float32)
