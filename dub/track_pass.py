"""Pass 1 of a dub: the landmarks of every frame, on every core.

A tracker follows one face from frame to frame, so on its own it is sequential and uses one core
(the mesh model is 9 ms of a GRID frame's 16). The video is therefore cut into chunks that are
tracked at once on ``workers`` threads, each chunk from a keyframe (the detector), as MediaPipe's
video mode starts after it has lost a face; onnxruntime releases the GIL, so two threads use two
cores. Where a chunk's first face is not the one the previous chunk ended on (a second, larger
person), that chunk is tracked again from where the previous one ended, so one person is followed
through the whole video, as a single tracker would.

The merge, in frame order on the caller's thread, keeps the landmarks, the widest-open frontal
frame and (``loop`` mode) the frames themselves.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from lipstream.avatar.detect import N_LANDMARKS
from lipstream.avatar.rig import CHIN, FOREHEAD, NOSE_TIP

from .errors import DubTooLongError
from .media import FrameStore, VideoInfo, read_frames
from .track import FaceTracker, is_frontal, smooth_landmarks

PREFETCH_FRAMES = 4  # decoded ahead of the trackers, on their own thread
CHUNK_BYTES = 48 * 2**20  # decoded frames per chunk: 17 frames of 720p, the cap of GRID's
MAX_CHUNK_FRAMES = 50  # two seconds at 25 fps: one keyframe in 50 costs ~1 % more
MIN_CHUNK_FRAMES = 8
JUMP_OF_FACE_HEIGHT = 0.5  # a chunk starting this far (of a face height) away is another face

T = TypeVar("T")
Progress = Callable[[str, int, int], None]


@dataclass
class TrackedVideo:
    """What pass 1 hands to pass 2."""

    points: np.ndarray  # (T, 478, 3) float32 smoothed, NaN where no face
    keyframes: int
    best: tuple[np.ndarray, np.ndarray] | None  # (frame, landmarks) with the widest mouth
    store: FrameStore  # the decoded frames where ``store.complete``; close it when done


@dataclass
class _Chunk:
    frames: list[np.ndarray]
    landmarks: list[np.ndarray | None]
    keyframes: int


def track_video(
    video: Path,
    info: VideoInfo,
    *,
    pick: tuple[float, float] | None,
    workers: int,
    must_keep_frames: bool,
    max_duration_s: float | None,
    progress: Progress | None = None,
) -> TrackedVideo:
    """Landmarks of every frame of ``video``, and its frames where they fit in memory.

    ``must_keep_frames`` (``loop`` mode) keeps them whatever their size (``FrameStore``).

    Raises:
        DubTooLongError: the video runs past ``max_duration_s``.
        DubInputError: a frame does not decode (from ``read_frames``).
    """
    hint = int(round((info.duration_s or 0.0) * float(info.fps)))
    store = FrameStore(info.width * info.height * 3, hint, spill=must_keep_frames)
    merged = _Merge(pick, store, progress, hint)
    pending: deque[Future[_Chunk]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dub-track")
    size = chunk_frames(info.width * info.height * 3, hint, workers)
    frames = prefetched(read_frames(video, info), PREFETCH_FRAMES)
    try:
        for start, chunk in _batched(frames, size):
            if max_duration_s is not None and start / float(info.fps) > max_duration_s:
                raise DubTooLongError(
                    f"the video {video.name} is longer than {max_duration_s:.0f} s, "
                    "the most that is accepted"
                )
            pending.append(pool.submit(_track_chunk, chunk, pick, None))
            while len(pending) > workers:
                merged.add(pending.popleft().result())
        while pending:
            merged.add(pending.popleft().result())
    except BaseException:
        for future in pending:
            future.cancel()
        store.close()
        raise
    finally:
        frames.close()  # stops the decoding thread if a chunk failed
        pool.shutdown(wait=True)
    return merged.result()


def chunk_frames(frame_bytes: int, expected_frames: int, workers: int) -> int:
    """Frames per chunk: within ``CHUNK_BYTES``, and short videos split evenly over the workers."""
    by_memory = max(MIN_CHUNK_FRAMES, CHUNK_BYTES // max(frame_bytes, 1))
    even = -(-max(expected_frames, 1) // max(workers, 1))
    return int(max(1, min(by_memory, MAX_CHUNK_FRAMES, even)))


def _track_chunk(
    frames: list[np.ndarray], pick: tuple[float, float] | None, follow: np.ndarray | None
) -> _Chunk:
    tracker = FaceTracker(pick, follow)
    landmarks = [tracker(rgb) for rgb in frames]
    return _Chunk(frames, landmarks, tracker.keyframes)


class _Merge:
    """Chunks joined in frame order: landmarks, the widest frontal mouth, the stored frames."""

    def __init__(
        self,
        pick: tuple[float, float] | None,
        store: FrameStore,
        progress: Progress | None,
        hint: int,
    ) -> None:
        self._pick, self._store, self._progress, self._hint = pick, store, progress, hint
        self._points: list[np.ndarray] = []
        self._nan = np.full((N_LANDMARKS, 3), np.nan, np.float32)
        self._last: np.ndarray | None = None
        self._keyframes = 0
        self._best: tuple[np.ndarray, np.ndarray] | None = None
        self._best_open = -1.0

    def add(self, chunk: _Chunk) -> None:
        if self._jumped(chunk):
            chunk = _track_chunk(chunk.frames, self._pick, self._last)
        self._keyframes += chunk.keyframes
        for rgb, lm in zip(chunk.frames, chunk.landmarks, strict=True):
            self._points.append(self._nan if lm is None else lm)
            if lm is not None and is_frontal(lm):
                opening = mouth_opening(lm)
                if opening > self._best_open:
                    self._best, self._best_open = (rgb.copy(), lm), opening
            self._store.add(rgb)
        self._last = chunk.landmarks[-1]
        if self._progress is not None:
            done = len(self._points)
            self._progress("track", done, max(self._hint, done))

    def _jumped(self, chunk: _Chunk) -> bool:
        """Whether ``chunk`` starts on another face than the one the previous chunk ended on."""
        first = chunk.landmarks[0]
        if self._last is None or first is None:
            return False
        face_h = float(np.linalg.norm(self._last[FOREHEAD, :2] - self._last[CHIN, :2]))
        moved = float(np.linalg.norm(first[NOSE_TIP, :2] - self._last[NOSE_TIP, :2]))
        return moved > JUMP_OF_FACE_HEIGHT * face_h

    def result(self) -> TrackedVideo:
        empty = np.zeros((0, N_LANDMARKS, 3), np.float32)
        stacked = np.stack(self._points) if self._points else empty
        return TrackedVideo(smooth_landmarks(stacked), self._keyframes, self._best, self._store)


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap (13-14) over face height (10-152): how open this frame's mouth is."""
    gap = float(np.linalg.norm(lm[13, :2] - lm[14, :2]))
    return gap / max(float(np.linalg.norm(lm[10, :2] - lm[152, :2])), 1e-6)


def _batched(items: Iterable[T], size: int) -> Iterator[tuple[int, list[T]]]:
    """``(index of the first item, up to size items)``, in order."""
    chunk: list[T] = []
    start = 0
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield start, chunk
            start += size
            chunk = []
    if chunk:
        yield start, chunk


def prefetched(items: Generator[T, None, None], depth: int) -> Generator[T, None, None]:
    """``items`` produced on a helper thread up to ``depth`` ahead: decoding beside tracking.

    The consumer sees the producer's exception where the item would have been. Leaving the loop
    early (an error, a break) stops the producer, closes ``items`` on its thread and joins it.
    """
    buffer: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                buffer.put((True, item))
                if stop.is_set():
                    return
            buffer.put((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put((False, exc))
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="dub-decode", daemon=True)
    thread.start()
    try:
        while True:
            more, value = buffer.get()
            if not more:
                if isinstance(value, BaseException):
                    raise value
                return
            yield value  # type: ignore[misc]  # the queue holds Ts while ``more``
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then join it
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
