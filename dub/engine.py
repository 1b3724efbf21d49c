"""``dub_file``: a video and new audio in, the video re-lipped to that audio out (MP4).

Two passes over the video, so that memory stays bounded by one frame plus the landmarks:

1. track: every frame is decoded once and its face followed (``track_pass.py``, chunks on every
   core); the landmarks are kept, then smoothed over time, and give the speaker's rest shape
   (``retarget.ShapeRest``).
2. render: the new audio goes through the live motion pipeline exactly as ``lipstream render``
   feeds it (20 ms chunks, ``server/offline.py``); each output frame gets the input frame the sync
   mode names, re-lipped to that frame's mouth row (``retarget.py``), and is muxed with the new
   audio. Frames without a face are written unchanged and counted.

The output is written to a hidden sibling and renamed into place, so a failed or cancelled dub
leaves no file behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from lipstream.realtime.clock import SAMPLE_RATE_HZ, MediaClock
from lipstream.realtime.driver import DRIVERS, make_driver
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import N_MOUTH_PARAMS
from lipstream.realtime.render import generator_session
from lipstream.server.offline import OFFLINE_VOICE_LEAD_MS, render_poses

from .errors import DubInputError, DubNoFaceError, DubTooLongError
from .media import (
    OUTPUT_AUDIO_RATE_HZ,
    SYNC_MODES,
    DubWriter,
    FrameStore,
    VideoInfo,
    audio_channels,
    fit_length,
    output_frames,
    probe_video,
    read_audio,
    read_frames,
    source_index,
)
from .retarget import MouthRetargeter, ShapeRest
from .track import is_frontal
from .track_pass import track_video

DRIVER_FPS = 25  # the motion model's frame rate; rows are resampled to the video's own
SILENCE_TAIL_S = 1.0  # after the speech: the lips close, and rows past it are the rest mouth
IN_FLIGHT_FRAMES = 2  # per render worker: enough to keep it busy, few frames held in memory

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage ``track`` then ``render``; total may be an estimate."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DubOptions:
    """How to dub.

    Attributes:
        sync_mode: one of ``SYNC_MODES``.
        face: ``(x, y)`` px of the face to dub when there are several; None: the largest.
        driver: mouth driver name (``realtime/driver.py``), as ``lipstream render --driver``.
        threads: onnxruntime intra-op threads of the generator and the face mesh.
        workers: threads tracking (pass 1) or re-lipping (pass 2) frames at once, while the
            caller's thread decodes and encodes.
        max_duration_s: refuse a video or audio longer than this (None: any length).
    """

    sync_mode: str = "cut_off"
    face: tuple[float, float] | None = None
    driver: str = "learned"
    threads: int = 1
    workers: int = 2
    max_duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.sync_mode not in SYNC_MODES:
            raise ValueError(f"sync mode must be one of {SYNC_MODES}, got {self.sync_mode!r}")
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {DRIVERS}, got {self.driver!r}")


@dataclass(frozen=True)
class DubSummary:
    """What a dub did; ``realtime_factor`` is output seconds per wall-clock second.

    ``cpu_seconds`` is the CPU time of this process during the dub, all its threads together: on a
    busy machine it says what the dub itself cost where the wall clock also counts the neighbours.
    """

    frames: int
    source_frames: int
    faces_found: int
    frames_without_face: int
    keyframes: int
    fps: float
    audio_s: float
    output_s: float
    sync_mode: str
    seconds: float
    cpu_seconds: float
    realtime_factor: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The summary as a JSON-ready dict."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def dub_file(
    video: Path,
    audio: Path,
    output: Path,
    options: DubOptions | None = None,
    progress: Progress | None = None,
) -> DubSummary:
    """Dubs ``video`` with ``audio`` into ``output`` (H.264 + AAC MP4).

    Runs on the calling thread (minutes for long videos); ``progress`` is called from it.

    Raises:
        DubInputError: an input is missing, empty, corrupt, lacks its stream or does not decode.
        DubNoFaceError: no frame of the video holds a face.
        DubTooLongError: an input is longer than ``options.max_duration_s``.
    """
    options = options or DubOptions()
    started, cpu_started = time.perf_counter(), time.process_time()
    info = probe_video(video)
    speech = read_audio(audio, SAMPLE_RATE_HZ)[0]
    layout = "stereo" if audio_channels(audio) == 2 else "mono"
    sound = read_audio(audio, OUTPUT_AUDIO_RATE_HZ, layout)
    audio_s = len(speech) / SAMPLE_RATE_HZ
    _check_duration(options.max_duration_s, "audio", audio, audio_s)
    _check_duration(options.max_duration_s, "video", video, info.duration_s)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dub-audio") as side:
        # The encoder and motion model run (and the generator loads) beside pass 1.
        rows = side.submit(_audio_side, speech, options)
        tracked = track_video(
            video, info, pick=options.face, workers=options.workers,
            must_keep_frames=options.sync_mode == "loop", max_duration_s=options.max_duration_s,
            progress=progress,
        )  # fmt: skip
        rows.result()
    try:
        n_src = len(tracked.points)
        found = ~np.isnan(tracked.points[:, 0, 0])
        if not found.any() or tracked.best is None:
            raise DubNoFaceError(f"no face was found in any of the {n_src} frames of {video}")
        n_out = output_frames(options.sync_mode, n_src, audio_s, info.fps)
        if n_out < 1:
            raise DubInputError(f"the audio {audio} is shorter than one video frame")
        mouth = output_rows(rows.result(), n_out, float(info.fps))
        out_samples = int(round(n_out / info.fps * OUTPUT_AUDIO_RATE_HZ))
        rest = ShapeRest.from_landmarks(tracked.points)
        retargeter = MouthRetargeter.for_video(*tracked.best, rest, threads=options.threads)
        frames = _source_frames(video, info, options.sync_mode, n_src, n_out, tracked.store)
        faces = _render(
            output, info, fit_length(sound, out_samples), frames, tracked.points, mouth,
            retargeter, progress, options.workers,
        )  # fmt: skip
    finally:
        tracked.store.close()
    seconds = time.perf_counter() - started
    output_s = n_out / float(info.fps)
    return DubSummary(
        frames=n_out,
        source_frames=n_src,
        faces_found=faces,
        frames_without_face=n_out - faces,
        keyframes=tracked.keyframes,
        fps=float(info.fps),
        audio_s=audio_s,
        output_s=output_s,
        sync_mode=options.sync_mode,
        seconds=seconds,
        cpu_seconds=time.process_time() - cpu_started,
        realtime_factor=output_s / max(seconds, 1e-9),
    )


def _check_duration(limit_s: float | None, what: str, path: Path, seconds: float | None) -> None:
    if limit_s is not None and seconds is not None and seconds > limit_s:
        raise DubTooLongError(
            f"the {what} {path.name} is {seconds:.0f} s long; at most {limit_s:.0f} s are accepted"
        )


def driver_rows(speech: np.ndarray, driver: str) -> np.ndarray:
    """``(k, N_MOUTH_PARAMS)`` float32 mouth rows at ``DRIVER_FPS`` for 16 kHz ``speech``.

    The live pipeline, fed as ``lipstream render`` feeds it, over the speech and
    ``SILENCE_TAIL_S`` of silence after it (the VAD gate closes the mouth there).
    """
    clock = MediaClock(fps=DRIVER_FPS)
    tail = np.zeros(int(SILENCE_TAIL_S * SAMPLE_RATE_HZ), np.float32)
    audio = np.concatenate([speech.astype(np.float32), tail])
    mouth_driver = make_driver(driver, clock, voice_lead_ms=OFFLINE_VOICE_LEAD_MS)
    poses = render_poses(MotionPipeline(clock, mouth_driver), audio)
    return np.stack([p.mouth for p in poses]).astype(np.float32)


def output_rows(rows: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """``rows`` at ``DRIVER_FPS`` resampled to ``n_frames`` frames at ``fps``.

    Linear, at each frame's start time; frames past the rows get the rest mouth (zeros), as
    silence does.
    """
    at = np.arange(n_frames) * (DRIVER_FPS / fps)
    index = np.arange(len(rows))
    out = np.zeros((n_frames, N_MOUTH_PARAMS), np.float32)
    for k in range(min(rows.shape[1], N_MOUTH_PARAMS)):
        out[:, k] = np.interp(at, index, rows[:, k], right=0.0)
    return out


def _audio_side(speech: np.ndarray, options: DubOptions) -> np.ndarray:
    """The driver's rows, and the generator loaded: the work that can run beside tracking."""
    generator_session(threads=options.threads)
    return driver_rows(speech, options.driver)


def _source_frames(
    video: Path, info: VideoInfo, mode: str, n_src: int, n_out: int, store: FrameStore
) -> Iterator[tuple[int, np.ndarray]]:
    """``(source index, frame)`` for each output frame: kept from pass 1, or decoded again."""
    if store.complete:
        for i in range(n_out):
            s = source_index(mode, i, n_src)
            yield s, store.get(s)
        return
    decoded = read_frames(video, info)
    current, frame = -1, None
    for i in range(n_out):
        s = source_index(mode, i, n_src)
        while current < s:
            frame = next(decoded)
            current += 1
        assert frame is not None
        yield s, frame
    decoded.close()


def _render(
    output: Path,
    info: VideoInfo,
    sound: np.ndarray,
    frames: Iterator[tuple[int, np.ndarray]],
    points: np.ndarray,
    mouth: np.ndarray,
    retargeter: MouthRetargeter,
    progress: Progress | None,
    threads: int,
) -> int:
    """Pass 2: writes the output through a hidden sibling file; returns frames with a face."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    writer = DubWriter(partial, info, sound)
    faces = 0
    pending: deque[Future[np.ndarray] | np.ndarray] = deque()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dub-render")
    try:
        # Frames are re-lipped on the pool while this thread decodes and encodes, in order: the
        # generator and most of the rig release the GIL, so two threads use both cores.
        for i, (s, frame) in enumerate(frames):
            lm = points[s]
            if not np.isnan(lm[0, 0]) and is_frontal(lm):
                pending.append(pool.submit(retargeter.render, frame, lm, mouth[i]))
                faces += 1
            else:
                pending.append(frame)
            while len(pending) > IN_FLIGHT_FRAMES * threads or (pending and _ready(pending[0])):
                _write_next(writer, pending)
                if progress is not None:
                    progress("render", i + 1 - len(pending), len(mouth))
        while pending:
            _write_next(writer, pending)
        writer.close()
        os.replace(partial, output)
    except BaseException:
        for item in pending:
            if isinstance(item, Future):
                item.cancel()
        writer.abort()
        partial.unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True)
    if progress is not None:
        progress("render", len(mouth), len(mouth))
    return faces


def _ready(item: Future[np.ndarray] | np.ndarray) -> bool:
    return not isinstance(item, Future) or item.done()


def _write_next(writer: DubWriter, pending: deque[Future[np.ndarray] | np.ndarray]) -> None:
    item = pending.popleft()
    writer.write(item.result() if isinstance(item, Future) else item)
