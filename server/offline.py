"""``lipstream render``: the live pipeline run over a file, muxed with its audio in sync.

The audio is fed in 20 ms chunks, exactly as the server feeds WebRTC packets, so offline frames are
the frames a live session would have rendered. Frame n is placed at n/fps; the audio starts at 0, so
lips and voice line up without the live pipeline delay.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from lipstream.avatar import build_avatar
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.clock import SAMPLE_RATE_HZ, MediaClock
from lipstream.realtime.driver import make_driver
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import FramePose
from lipstream.realtime.render import Renderer
from tqdm import tqdm

CHUNK_SAMPLES = SAMPLE_RATE_HZ // 50  # 20 ms, one WebRTC Opus packet
FRAMES_IN_FLIGHT = 8  # rendered ahead of the encoder: bounds memory on long files
OUTPUT_AUDIO_RATE_HZ = 48_000
# The learned mouth moves this much earlier against the voice in files, which mux the voice unheld
# (live, ``LIPS_LAG_MS`` sets the offset, calibrated with the independent probe on a LibriSpeech
# voice). The motion model learned one speaker's timing (GRID s1); on voices it never heard its
# mouth comes later. Best shift of voice loudness against the rendered opening, 30 clips each
# (positive: mouth after voice; real GRID faces 0 ms, ``bench/av_reference.py``), mean, at a lead
# of 0 / 10 / 20 ms: s1 dev 0 / -3 / -12, VCTK +19 / +8 / -2, LibriSpeech test-other +28 / +18 / +8.
# At 10 ms the s1 dev renders also follow the real lips a little better (``bench/face_shape.py``,
# 45 clips: opening r 0.838 -> 0.841; at 20 ms 0.826), so 10 ms it is.
OFFLINE_VOICE_LEAD_MS = 10


def read_audio_16k(path: Path) -> np.ndarray:
    """Decodes any audio file PyAV reads into ``(n,)`` float32 mono at 16 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        for frame in container.decode(audio=0):
            frame.pts = None
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if not chunks:
        raise ValueError(f"{path} holds no audio samples")
    return np.concatenate(chunks).astype(np.float32)


def render_poses(pipeline: MotionPipeline, audio: np.ndarray) -> list[FramePose]:
    """Feeds ``audio`` in live-sized chunks, then pads with silence so the last frame completes."""
    poses = []
    for start in range(0, len(audio), CHUNK_SAMPLES):
        poses.extend(pipeline.push(audio[start : start + CHUNK_SAMPLES]))
    tail = pipeline.lookahead_samples + pipeline.clock.frame_end(0)
    poses.extend(pipeline.push(np.zeros(tail, dtype=np.float32)))
    n_frames = -(-len(audio) * pipeline.clock.fps // SAMPLE_RATE_HZ)
    return poses[:n_frames]


def rendered_in_order(renderer: Renderer, poses: Iterable[FramePose]) -> Iterator[np.ndarray]:
    """``renderer.render`` of each pose, in order, computed by one thread per core.

    ``Renderer.render`` is thread-safe and onnxruntime releases the GIL, so the frames render in
    parallel while the caller encodes; at most ``FRAMES_IN_FLIGHT`` wait, however long the file.
    """
    workers = max(1, min(os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
        pending: deque[Future[np.ndarray]] = deque()
        for pose in poses:
            pending.append(pool.submit(renderer.render, pose))
            if len(pending) >= FRAMES_IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def render_file(
    photo: Path,
    audio_path: Path,
    output: Path,
    fps: int = 25,
    driver: str = "learned",
    framing: str = "auto",
) -> dict[str, float]:
    """Renders ``audio_path`` spoken by ``photo`` into ``output`` (H.264 + AAC MP4); timings."""
    started = time.perf_counter()
    renderer = Renderer(Avatar.load(build_avatar(photo, progress=True, framing=framing).path))
    clock = MediaClock(fps=fps)
    audio = read_audio_16k(audio_path)
    mouth_driver = make_driver(driver, clock, voice_lead_ms=OFFLINE_VOICE_LEAD_MS)
    poses = render_poses(MotionPipeline(clock, mouth_driver), audio)
    with av.open(str(output), "w") as container:
        width, height = renderer.frame_size
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "20"}
        sound = container.add_stream("aac", rate=OUTPUT_AUDIO_RATE_HZ)
        rendered = rendered_in_order(renderer, poses)
        for pose, image in tqdm(zip(poses, rendered, strict=True), total=len(poses), desc="render"):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pose.index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        _mux_audio(container, sound, audio)
    elapsed = time.perf_counter() - started
    return {"frames": len(poses), "audio_s": len(audio) / SAMPLE_RATE_HZ, "elapsed_s": elapsed}


def _mux_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, audio: np.ndarray
) -> None:
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE_HZ
    frame.pts = 0
    resampler = av.AudioResampler(
        format="fltp", layout="mono", rate=OUTPUT_AUDIO_RATE_HZ, frame_size=1024
    )
    for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
        container.mux(stream.encode(resampled))
    container.mux(stream.encode(None))
