"""Per-frame events for rigs: an Oculus-15 viseme and ARKit-named blendshape weights.

3-D and 2-D rigs (TalkingHead, VRM, Unity, Unreal) are driven by visemes or blendshapes, not by
video. Both are derived here from what the pipeline already computes for each frame: the phone
posteriors of the streaming encoder (where the learned driver runs) and the six mouth parameters
(``pose.MOUTH_PARAMS``), so they move exactly as the rendered face does.

Scales are the mouth parameters' ranges on GRID s1 (``models/motion/CARD.md``): ``open`` reaches
about 0.12 face heights wide open, ``width`` and ``protrude`` vary about ±0.04 and ±0.03.
"""

from __future__ import annotations

import numpy as np

from .clock import MediaClock
from .driver import MouthDriver, make_driver
from .motion import HOP_SAMPLES, PosteriorEncoder, replace_newest
from .phoneset import PHONE_TO_VISEME_INDEX, VISEMES
from .pose import MOUTH_PARAMS, FramePose

OPEN_FULL = 0.12  # ``open`` (face heights) that maps to jawOpen 1: a wide open mouth (pose.py)
WIDTH_FULL = 0.03  # |``width``| (face heights) for a full smile or pucker
PROTRUDE_FULL = 0.02  # ``protrude`` (face heights) for a full funnel
FUNNEL_OPEN = 0.03  # a funnel needs the lips apart: full at this ``open`` and above
CLOSED_OPEN = 0.01  # below this ``open`` the lips count as together (viseme from parameters)
POSTERIOR_KEEP = 400  # posterior frames kept by the tap (4 s at 100 Hz): far beyond any window

ARKIT_SHAPES: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthRollLower",
    "mouthPressLeft",
    "mouthPressRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
)
"""The blendshapes every frame event carries, each in 0..1."""

_COL = {name: i for i, name in enumerate(MOUTH_PARAMS)}


def _unit(x: float) -> float:
    return round(float(min(max(x, 0.0), 1.0)), 3)


def arkit_weights(mouth: np.ndarray, blink: float) -> dict[str, float]:
    """ARKit-named weights in 0..1 for one frame.

    Args:
        mouth: ``(len(MOUTH_PARAMS),)`` float32 mouth parameters.
        blink: eyelid closure, 0 open .. 1 shut.
    """
    opening = float(mouth[_COL["open"]])
    width = float(mouth[_COL["width"]])
    protrude = float(mouth[_COL["protrude"]])
    press = float(mouth[_COL["press"]])
    tuck = float(mouth[_COL["tuck"]])
    return {
        "jawOpen": _unit(opening / OPEN_FULL),
        "mouthClose": _unit(press),
        "mouthFunnel": _unit(protrude / PROTRUDE_FULL * min(opening / FUNNEL_OPEN, 1.0)),
        "mouthPucker": _unit(-width / WIDTH_FULL),
        "mouthSmileLeft": _unit(width / WIDTH_FULL),
        "mouthSmileRight": _unit(width / WIDTH_FULL),
        "mouthRollLower": _unit(max(tuck, 0.5 * press)),
        "mouthPressLeft": _unit(press),
        "mouthPressRight": _unit(press),
        "eyeBlinkLeft": _unit(blink),
        "eyeBlinkRight": _unit(blink),
    }


def viseme_from_mouth(mouth: np.ndarray) -> str:
    """The Oculus viseme nearest the mouth parameters (used where no encoder runs)."""
    opening = float(mouth[_COL["open"]])
    if float(mouth[_COL["press"]]) > 0.5:
        return "PP"
    if float(mouth[_COL["tuck"]]) > 0.5:
        return "FF"
    if opening < CLOSED_OPEN:
        return "sil"
    width = float(mouth[_COL["width"]]) / WIDTH_FULL
    if width < -0.4:
        return "ou" if opening < 0.5 * OPEN_FULL else "oh"
    if width > 0.4:
        return "ih" if opening < 0.4 * OPEN_FULL else "E"
    return "aa" if opening >= 0.4 * OPEN_FULL else "DD"


def viseme_from_posteriors(posteriors: np.ndarray) -> str:
    """The viseme with the most posterior mass over ``(k, 40)`` float32 phone posteriors."""
    if len(posteriors) == 0:
        return "sil"
    mass = np.zeros(len(VISEMES), dtype=np.float64)
    np.add.at(mass, PHONE_TO_VISEME_INDEX, posteriors.sum(axis=0))
    return VISEMES[int(np.argmax(mass))]


class PosteriorTap:
    """Wraps a ``PosteriorEncoder``, keeping its recent posteriors for the frame events.

    Implements ``PosteriorEncoder`` itself, so ``LearnedDriver`` runs it unchanged; called from the
    session's worker thread only.
    """

    def __init__(self, encoder: PosteriorEncoder) -> None:
        self._encoder = encoder
        self.reset()

    @property
    def lookahead_ms(self) -> int:
        """The wrapped encoder's look-ahead."""
        return self._encoder.lookahead_ms

    def reset(self) -> None:
        """Forgets all audio and every kept posterior."""
        self._encoder.reset()
        self._kept = np.zeros((0, len(PHONE_TO_VISEME_INDEX)), np.float32)
        self._first = 0  # posterior frame index of self._kept[0]

    def push(self, audio: np.ndarray) -> np.ndarray:
        """See ``PosteriorEncoder.push``; keeps the output."""
        return self._keep(self._encoder.push(audio))

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """See ``PosteriorEncoder.push_quiet``; keeps its silence rows (the events say "sil")."""
        return self._keep(self._encoder.push_quiet(audio))

    def rehear(self) -> np.ndarray:
        """See ``PosteriorEncoder.rehear``; its rows replace the kept silence rows."""
        heard = self._encoder.rehear()
        replace_newest(self._kept, heard)
        return heard

    def _keep(self, out: np.ndarray) -> np.ndarray:
        if len(out):
            self._kept = np.concatenate([self._kept, out.astype(np.float32)])
            drop = len(self._kept) - POSTERIOR_KEEP
            if drop > 0:
                self._kept = self._kept[drop:]
                self._first += drop
        return out

    def between(self, start_sample: int, end_sample: int) -> np.ndarray:
        """``(k, 40)`` float32 posteriors of the hops in ``[start_sample, end_sample)``."""
        lo = max(start_sample // HOP_SAMPLES - self._first, 0)
        hi = max(end_sample // HOP_SAMPLES - self._first, lo)
        return self._kept[lo:hi]


class FrameEvents:
    """Makes the event body of each pose; one per session, on its worker thread."""

    def __init__(self, clock: MediaClock, tap: PosteriorTap | None) -> None:
        self._clock = clock
        self._tap = tap

    def describe(self, pose: FramePose) -> dict[str, object]:
        """``viseme``, ``weights`` and ``speaking`` of one frame (no frame number or time)."""
        if self._tap is not None and pose.speaking:
            window = self._tap.between(
                self._clock.frame_start(pose.index), self._clock.frame_end(pose.index)
            )
            viseme = viseme_from_posteriors(window)
        elif pose.speaking:
            viseme = viseme_from_mouth(pose.mouth)
        else:
            viseme = "sil"
        return {
            "viseme": viseme,
            "weights": arkit_weights(pose.mouth, pose.blink),
            "speaking": bool(pose.speaking),
        }


def make_driver_with_events(name: str, clock: MediaClock) -> tuple[MouthDriver, FrameEvents]:
    """The live driver ``name``, plus the events maker that reads its encoder's posteriors.

    The learned driver runs with ``LIVE_VOICE_LEAD_MS``: its frames need no audio past their end.
    """
    if name == "learned":
        from .encoder import StreamingPhonemeEncoder
        from .motion import LIVE_VOICE_LEAD_MS, LearnedDriver

        tap = PosteriorTap(StreamingPhonemeEncoder())
        driver = LearnedDriver(clock, encoder=tap, voice_lead_ms=LIVE_VOICE_LEAD_MS)
        return driver, FrameEvents(clock, tap)
    return make_driver(name, clock), FrameEvents(clock, None)
