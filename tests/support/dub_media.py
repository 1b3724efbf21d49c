"""Short media for the dub tests, made in the test: a moving photo as a video, speech as WAV."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

FPS = 25
SIDE_PX = 320  # the photo is scaled to this: small frames keep the tests fast


def moving_photo(photo: Path, n_frames: int, shift_px: float = 1.0) -> list[np.ndarray]:
    """``n_frames`` RGB frames of ``photo`` panning: a head that moves, so every frame differs.

    Each frame is ``shift_px`` right of the previous and a fifth of that lower, edges repeated.
    """
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (SIDE_PX, SIDE_PX), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n_frames):
        mat = np.array([[1.0, 0.0, shift_px * i - 12], [0.0, 1.0, 0.2 * shift_px * i - 3]])
        frames.append(cv2.warpAffine(rgb, mat, (SIDE_PX, SIDE_PX), borderMode=cv2.BORDER_REPLICATE))
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """H.264 MP4 (crf 12, near lossless) of RGB frames, no audio."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_wav(path: Path, samples: np.ndarray, rate_hz: int) -> Path:
    """16-bit mono WAV of float samples in [-1, 1]."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def decode_video(path: Path) -> tuple[list[np.ndarray], float | None]:
    """RGB frames of ``path`` and its audio stream's duration in seconds (None: no audio)."""
    with av.open(str(path)) as container:
        audio_s = None
        if container.streams.audio:
            stream = container.streams.audio[0]
            audio_s = float(stream.duration * stream.time_base) if stream.duration else None
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, audio_s
