"""The motion stage: phone posteriors (100 Hz) -> mouth parameters, one row per video frame.

``MotionModel`` runs the shipped ``models/motion/motion.onnx`` on explicit windows of posteriors.
The model also sees the level of each 10 ms hop (dBFS), which it normalises to the window's peak.
``LearnedDriver`` chains the streaming phoneme encoder and the motion model behind the
``MouthDriver`` protocol: video frame ``n`` is predicted from the posterior frames ``[end - W,
end)``, where ``end = (frame_end(n) + motion look-ahead) // hop``, so it can be emitted once the
encoder has seen ``frame_end(n) + encoder look-ahead + motion look-ahead`` samples. The shipped
model's motion look-ahead is -40 ms: its window ends at the instant the frame depicts (a frame shows
its first instant, as a camera's exposure starts it), so the only look-ahead is the encoder's 50 ms.
Lips move before the sound they make (coarticulation); those 50 ms let the model anticipate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from .clock import MediaClock
from .onnx_session import onnx_session
from .phoneset import PHONES, SIL
from .pose import MOUTH_PARAMS, N_MOUTH_PARAMS

logger = logging.getLogger(__name__)

MOTION_ONNX = Path(str(resources.files("lipstream.models.motion").joinpath("motion.onnx")))
INPUT_NAME = "window"
LEVEL_NAME = "level_db"
LEVEL_EPS = 1e-9  # power floor: digital silence reads -90 dBFS
SILENCE_DB = np.float32(10.0 * np.log10(LEVEL_EPS))
OUTPUT_NAME = "mouth"
HOP_SAMPLES = 160  # 10 ms at 16 kHz: the posterior and level frame
MAX_LOOKAHEAD_MS = 50.0  # DESIGN.md: audio the mouth path may hear past a frame's end
LIPS_LAG_MS = 10  # see LearnedDriver.__init__
LIVE_VOICE_LEAD_MS = -10
"""The live driver's ``voice_lead_ms``: its windows end 10 ms before the instant a frame depicts, so
that a frame needs no audio past its own end (``LearnedDriver.lookahead_samples`` 0). Browsers send
20 ms packets, two to a frame: the 10 ms the window would otherwise hear past the frame's end cost
a whole packet, 20 ms, before the frame could be made. Each frame now shows its mouth 10 ms late
against the voice; ``LIPS_LAG_MS`` holds the voice to match (see ``LearnedDriver.__init__``)."""
ONNX_THREADS = 1  # one motion run per video frame is ~0.1 ms; more threads only add overhead


class MotionContractError(ValueError):
    """The ONNX file's metadata does not match what this runtime feeds it."""


@dataclass(frozen=True)
class MotionContract:
    """The input contract stored in ``motion.onnx`` metadata, checked at load.

    Attributes:
        phones: posterior column order; must equal ``phonemes.PHONES``. window_frames: posterior
        frames per window. lookahead_samples: 16 kHz samples past a video frame's end covered by its
        window. hop_samples: samples per posterior frame (160: 100 Hz). sample_rate_hz: audio rate
        the hop refers to.
    """

    phones: tuple[str, ...]
    window_frames: int
    lookahead_samples: int
    hop_samples: int
    sample_rate_hz: int


class PosteriorEncoder(Protocol):
    """What the driver needs from the streaming phoneme encoder (``realtime.encoder``).

    Posterior frame ``t`` (audio ``[t * 10 ms, (t + 1) * 10 ms)``) is returned once audio up to
    ``(t + 1) * 10 ms + lookahead_ms`` has arrived.
    """

    @property
    def lookahead_ms(self) -> int:
        """Audio needed past a posterior frame's end before it is emitted."""
        ...

    def push(self, audio: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 16 kHz -> ``(k, len(PHONES))`` float32 posteriors, 100 Hz, in order."""
        ...

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """As ``push`` for audio whose posteriors will not be read; may return SIL rows cheaply."""
        ...

    def rehear(self) -> np.ndarray:
        """After ``push_quiet``: posteriors for the latest SIL rows it gave, oldest first."""
        ...

    def reset(self) -> None:
        """Forgets all audio."""
        ...


def replace_newest(rows: np.ndarray, newest: np.ndarray) -> None:
    """Overwrites the last rows of ``rows`` with the last rows of ``newest``, as many as both hold.

    For the posteriors ``PosteriorEncoder.rehear`` restores over the SIL rows of a quiet stretch.
    """
    keep = min(len(rows), len(newest))
    if keep:
        rows[len(rows) - keep :] = newest[len(newest) - keep :]


def hop_levels_db(audio: np.ndarray) -> np.ndarray:
    """``(len(audio) // 160,)`` float32 dBFS of each complete 10 ms hop of 16 kHz audio."""
    n = len(audio) // HOP_SAMPLES
    hops = audio[: n * HOP_SAMPLES].astype(np.float64).reshape(n, HOP_SAMPLES)
    return (10.0 * np.log10((hops * hops).mean(1) + LEVEL_EPS)).astype(np.float32)


def _read_contract(session: ort.InferenceSession, path: Path) -> MotionContract:
    meta = session.get_modelmeta().custom_metadata_map
    try:
        contract = MotionContract(
            phones=tuple(meta["phones"].split(",")),
            window_frames=int(meta["window_frames"]),
            lookahead_samples=int(meta["lookahead_samples"]),
            hop_samples=int(meta["hop_samples"]),
            sample_rate_hz=int(meta["sample_rate_hz"]),
        )
    except (KeyError, ValueError) as exc:
        raise MotionContractError(f"{path}: missing or bad metadata ({exc})") from exc
    if contract.phones != PHONES:
        raise MotionContractError(f"{path}: phone order {contract.phones} != {PHONES}")
    if contract.hop_samples != HOP_SAMPLES or meta.get("level_input") != LEVEL_NAME:
        raise MotionContractError(
            f"{path}: expects hop {contract.hop_samples} and level input "
            f"{meta.get('level_input')!r}; runtime has {HOP_SAMPLES}, {LEVEL_NAME!r}"
        )
    if tuple(meta.get("mouth_params", "").split(",")) != MOUTH_PARAMS:
        raise MotionContractError(f"{path}: outputs {meta.get('mouth_params')} != {MOUTH_PARAMS}")
    return contract


class MotionModel:
    """The shipped motion ONNX: ``(B, W, 40)`` posteriors, ``(B, W)`` hop levels -> ``(B, 2)`` rows.

    One instance per process serves every session (it holds no per-session state); ``__call__`` may
    be called from several sessions' executor threads at once (onnxruntime sessions are
    thread-safe).
    """

    def __init__(self, path: Path = MOTION_ONNX, threads: int = ONNX_THREADS) -> None:
        self._session = onnx_session(path, threads)
        self.contract = _read_contract(self._session, path)

    def __call__(self, windows: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
        """Mouth parameters in face heights.

        Args:
            windows: ``(B, window_frames, len(PHONES))`` float32 posteriors.
            levels_db: ``(B, window_frames)`` float32 dBFS of the same 10 ms hops.
        """
        expected = (self.contract.window_frames, len(PHONES))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(
                f"motion windows must be (B, {expected[0]}, {expected[1]}), got {windows.shape}"
            )
        if levels_db.shape != windows.shape[:2]:
            raise ValueError(f"levels must be {windows.shape[:2]}, got {levels_db.shape}")
        if len(windows) == 0:
            return np.zeros((0, N_MOUTH_PARAMS), np.float32)
        feed = {INPUT_NAME: windows.astype(np.float32), LEVEL_NAME: levels_db.astype(np.float32)}
        out = self._session.run([OUTPUT_NAME], feed)[0]
        out[:, 0] = np.maximum(out[:, 0], 0.0)  # an inner-lip gap is never negative
        return out.astype(np.float32)


@lru_cache(maxsize=1)
def shared_motion_model() -> MotionModel:
    """The shipped motion model, loaded once per process and shared by every session's driver."""
    return MotionModel()


def _load_encoder() -> PosteriorEncoder:
    from .encoder import StreamingPhonemeEncoder

    return StreamingPhonemeEncoder()


class LearnedDriver:
    """Implements ``MouthDriver`` with the streaming encoder and the learned motion model.

    Args:
        voice_lead_ms: end each motion window this much later than the model was trained to (its
            contract's ``lookahead_samples``), so that the mouth moves that much earlier against
            the voice. Live, ``LIVE_VOICE_LEAD_MS`` (negative: the mouth 10 ms later, the frame a
            packet sooner), with ``LIPS_LAG_MS`` setting the A/V offset; offline renders, which
            mux the voice unheld, use ``server/offline.py``'s ``OFFLINE_VOICE_LEAD_MS``.

    Attributes:
        lookahead_samples: encoder look-ahead + the motion window's look-ahead, past the frame's
            end (0..50 ms; 0 live with the shipped models, 20 ms offline).
    """

    def __init__(
        self,
        clock: MediaClock,
        encoder: PosteriorEncoder | None = None,
        motion: MotionModel | None = None,
        voice_lead_ms: int = 0,
    ) -> None:
        self._clock = clock
        self._encoder = encoder if encoder is not None else _load_encoder()
        self._motion = motion if motion is not None else shared_motion_model()
        contract = self._motion.contract
        if contract.sample_rate_hz != clock.sample_rate_hz:
            raise MotionContractError(
                f"motion model expects {contract.sample_rate_hz} Hz, clock runs at "
                f"{clock.sample_rate_hz} Hz"
            )
        encoder_samples = int(self._encoder.lookahead_ms) * clock.sample_rate_hz // 1000
        lead_samples = voice_lead_ms * clock.sample_rate_hz // 1000
        self._window_end_samples = contract.lookahead_samples + lead_samples  # past a frame's end
        self.lookahead_samples = encoder_samples + self._window_end_samples
        # The voice leaves with the frame that covers it, held LIPS_LAG_MS past that frame's end.
        # Calibrated on real faces: on GRID s1 video the best correlation of voice loudness and
        # mouth opening puts the mouth 0 ms from the voice (median of 884 clips, IQR -50..+20 ms;
        # `python bench/av_reference.py --all`). The same measure on the live avatar, with
        # windows ending at the depicted instant, gave -30 ms with the voice held 30 ms, -10 ms
        # held 10 ms and +10 ms held 0 ms (the independent probe, one session, 3 runs each). With
        # LIVE_VOICE_LEAD_MS the mouth shows 10 ms later and a frame leaves a packet sooner; the
        # voice is released in whole 20 ms packets, so 10 and 20 ms hold the same, and 30 ms
        # kept the voice where it was (README, "Voice against lips"). Since the warp is drawn on
        # a coarse grid (realtime/coarse_warp.py) small openings show, and the mouth reads 10 ms
        # earlier: held 30 ms the probe gave -20 ms (3 of 3) and aiortc-buffered viewers -30 to
        # -40; held 10 ms the probe gives 0 and 0, aiortc viewers -10 to -20 and browser-like
        # buffers +20 to +30 (README, "The warp on a coarse grid").
        self.lips_lag_samples = LIPS_LAG_MS * clock.sample_rate_hz // 1000
        budget = int(MAX_LOOKAHEAD_MS * clock.sample_rate_hz / 1000)
        if not 0 <= self.lookahead_samples <= budget:
            # Below 0 a frame would leave before its own audio: the VAD gate and the voice
            # released with it need that audio.
            raise MotionContractError(
                f"look-ahead {self.lookahead_samples} samples is outside the 0..{budget}-sample "
                "budget"
            )
        sil = np.zeros((1, len(PHONES)), np.float32)
        sil[0, PHONES.index(SIL)] = 1.0
        # Silence before the stream, as far back as the first frame's window reaches (a window
        # that ends before the frame does may start before sample 0).
        first_end = (clock.frame_end(0) + self._window_end_samples) // contract.hop_samples
        pad = contract.window_frames + max(0, -first_end)
        self._sil_pad = np.repeat(sil, pad, 0)
        self._silent_levels = np.full(pad, SILENCE_DB, np.float32)
        self.reset()

    def reset(self) -> None:
        """Forgets all audio, as if newly constructed."""
        self._encoder.reset()
        self._posteriors = self._sil_pad.copy()  # row i is posterior frame i + self._first
        self._levels = self._silent_levels.copy()  # entry i is hop i + self._first
        self._first = -len(self._sil_pad)
        self._partial_hop = np.zeros(0, np.float32)
        self._unencoded: list[np.ndarray] = []
        self._samples_seen = 0
        self._next_frame = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """See ``MouthDriver.push``: ``(n,)`` float32 -> ``(k, N_MOUTH_PARAMS)`` float32.

        The encoder hears the audio only when the next video frame can be made, since only then
        are its posteriors read: one encoder run per frame rather than per 20 ms packet halves its
        cost (onnxruntime's fixed ~0.25 ms a run), and chunking does not change what it outputs.
        """
        windows, window_levels = self._take(audio, quiet=False)
        rows = self._motion(windows, window_levels)
        self._trim()
        return rows

    def push_quiet(self, audio: np.ndarray) -> np.ndarray:
        """As ``push``, when the caller will show every frame this call completes at rest.

        ``MotionPipeline`` calls it while the VAD hears no speech in any of those frames (its
        gate shuts the mouth then, whatever the driver says): the encoder keeps its features
        current but skips its network (``StreamingPhonemeEncoder.push_quiet``), the motion model
        does not run, and the frames come back at rest. At the next ``push`` the encoder
        re-hears its last second and the posteriors it skipped replace the SIL rows it gave
        (``StreamingPhonemeEncoder.rehear``), so the windows of the first speaking frames hold
        what the encoder heard.
        """
        windows, _ = self._take(audio, quiet=True)
        self._trim()
        return np.zeros((len(windows), N_MOUTH_PARAMS), np.float32)

    def _take(self, audio: np.ndarray, quiet: bool) -> tuple[np.ndarray, np.ndarray]:
        """Hands the audio to the encoder when a frame can be made; the windows now ready."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self._samples_seen += len(audio)
        self._unencoded.append(audio)
        if self._clock.frames_ready(self._samples_seen, self.lookahead_samples) > self._next_frame:
            if not quiet:
                self._restore_skipped()
            push = self._encoder.push_quiet if quiet else self._encoder.push
            new = push(np.concatenate(self._unencoded))
            self._unencoded = []
            if len(new):
                self._posteriors = np.concatenate([self._posteriors, new.astype(np.float32)])
        pending = np.concatenate([self._partial_hop, audio])
        levels = hop_levels_db(pending)
        self._partial_hop = pending[len(levels) * HOP_SAMPLES :]
        self._levels = np.concatenate([self._levels, levels])
        return self._ready_windows()

    def _restore_skipped(self) -> None:
        """Puts the posteriors of a quiet stretch's last frames where its SIL rows stood."""
        replace_newest(self._posteriors, self._encoder.rehear())

    def _ready_windows(self) -> tuple[np.ndarray, np.ndarray]:
        contract = self._motion.contract
        ready = self._clock.frames_ready(self._samples_seen, self.lookahead_samples)
        available = self._first + min(len(self._posteriors), len(self._levels))
        out, out_levels = [], []
        while self._next_frame < ready:
            frame_end = self._clock.frame_end(self._next_frame)
            end = (frame_end + self._window_end_samples) // contract.hop_samples
            if end > available:
                break  # the encoder has not caught up; the frame follows on a later push
            lo = end - contract.window_frames - self._first
            out.append(self._posteriors[lo : lo + contract.window_frames])
            out_levels.append(self._levels[lo : lo + contract.window_frames])
            self._next_frame += 1
        if not out:
            w = contract.window_frames
            return np.zeros((0, w, len(PHONES)), np.float32), np.zeros((0, w), np.float32)
        return np.stack(out), np.stack(out_levels)

    def _trim(self) -> None:
        """Keeps only the posteriors that a future frame's window can still reach."""
        contract = self._motion.contract
        frame_end = self._clock.frame_end(self._next_frame)
        end = (frame_end + self._window_end_samples) // contract.hop_samples
        drop = end - contract.window_frames - self._first
        if drop > 0:
            self._posteriors = self._posteriors[drop:]
            self._levels = self._levels[drop:]
            self._first += drop
